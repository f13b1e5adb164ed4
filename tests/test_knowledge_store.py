"""The knowledge base in the real PostgreSQL: seeded from the files, replaced,
exported back without loss, searched; unplaced questions kept for the editors."""

from __future__ import annotations

import dataclasses

import pytest

from routing import default_knowledge, route
from knowledge import KnowledgeFileError, export_csv, export_json, load_items
from knowledge import store
from knowledge.files import DEFAULT_DIRECTORY


@pytest.fixture(scope="module")
def items():
    return load_items(DEFAULT_DIRECTORY)


async def test_seed_from_files_and_export_round_trip(db, items, tmp_path):
    result = await store.seed_from_files(db)
    assert (result.inserted, result.updated, result.deleted) == (len(items), 0, ())
    from_db = await store.fetch_items(db)
    assert sorted(from_db, key=lambda i: i.id) == sorted(items, key=lambda i: i.id)
    # Export from the database, re-import the files: the same items, in file order.
    export_json(from_db, tmp_path / "json")
    assert load_items(tmp_path / "json") == items
    for path in (tmp_path / "json").iterdir():
        assert path.read_text(encoding="utf-8") == (DEFAULT_DIRECTORY / path.name).read_text(encoding="utf-8")
    export_csv(from_db, tmp_path / "base.csv")
    assert sorted(load_items(tmp_path / "base.csv"), key=lambda i: i.id) == sorted(items, key=lambda i: i.id)
    # Seeding again changes nothing.
    again = await store.seed_from_files(db)
    assert (again.inserted, again.updated, again.unchanged, again.deleted) == (0, 0, len(items), ())


async def test_replace_updates_inserts_and_deletes(db, items):
    await store.replace_all(db, items)
    changed = dataclasses.replace(items[0], answer="新的回答。", keywords=(*items[0].keywords, "新词"))
    added = dataclasses.replace(items[1], id="tax.brand_new", overview=False)
    kept = [changed, *items[1:-1], added]
    result = await store.replace_all(db, kept)
    assert (result.inserted, result.updated, result.deleted) == (1, 1, (items[-1].id,))
    assert await store.fetch_item(db, changed.id) == changed
    assert await store.fetch_item(db, items[-1].id) is None
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT created_at < updated_at AS touched FROM knowledge_items WHERE id = $1",
                                  items[2].id)
    assert row["touched"] is False  # unchanged rows keep their timestamps


async def test_invalid_files_write_nothing(db, tmp_path):
    (tmp_path / "tax.json").write_text('{"department": "tax", "items": [{"id": "Bad"}]}', encoding="utf-8")
    with pytest.raises(KnowledgeFileError):
        await store.seed_from_files(db, tmp_path)
    assert await store.fetch_items(db) == []


async def test_search_finds_items_by_the_bigrams_of_the_query(db, items):
    await store.replace_all(db, items)
    hits = await store.search(db, "公积金提取")
    assert hits[0].item.id == "housing_fund.withdraw_general"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # Another word order, filler words, a keyword inside the query: still found first.
    assert (await store.search(db, "怎么提取公积金"))[0].item.id == "housing_fund.withdraw_general"
    assert (await store.search(db, "我想办社保卡"))[0].item.id == "social_security.card_apply"
    assert (await store.search(db, "社保卡丢了怎么补办"))[0].item.id == "social_security.card_apply"
    # Procedure and materials are searched too (words found nowhere else).
    [materials] = [i for i in items if i.id == "civil_affairs.marriage"]
    assert "两寸合照" in "".join(materials.materials) and "两寸合照" not in materials.question + materials.answer
    assert (await store.search(db, "两寸合照"))[0].item.id == "civil_affairs.marriage"
    only_tax = await store.search(db, "发票", department="tax")
    assert only_tax and {h.item.department for h in only_tax} == {"tax"}
    assert len(await store.search(db, "营业执照", limit=2)) == 2
    # Words only in an alternative question (another way callers ask) find the item.
    assert (await store.search(db, "生意做大了"))[0].item.id == "enterprise.individual_to_company"
    assert await store.search(db, "   ") == []
    assert await store.search(db, "？！，") == []
    assert await store.search(db, "量子力学") == []


async def test_unplaced_questions_are_kept_for_the_editors(db, items):
    await store.replace_all(db, items)
    decision = route("那个手续怎么弄", default_knowledge())
    assert decision.unplaced
    first = await store.record_unplaced(db, decision.text, transcript_confidence=0.62,
                                        linkedid="1700000000.42", decision=decision.to_dict())
    second = await store.record_unplaced(db, "嗯那个牌照", transcript_confidence=None)
    queue = await store.list_unplaced(db)
    assert [q.id for q in queue] == [first, second]
    assert queue[0].text == "那个手续怎么弄" and queue[0].linkedid == "1700000000.42"
    assert queue[0].transcript_confidence == pytest.approx(0.62)
    assert queue[0].decision["action"] == "reprompt" and queue[0].status == "new"

    assert await store.set_unplaced_status(db, first, "answered", knowledge_item_id="general.which_department",
                                           note="已补充")
    assert await store.set_unplaced_status(db, 999999, "dismissed") is False
    assert [q.id for q in await store.list_unplaced(db)] == [second]
    answered = await store.list_unplaced(db, statuses=["answered"])
    assert answered[0].knowledge_item_id == "general.which_department" and answered[0].note == "已补充"

    with pytest.raises(ValueError):
        await store.record_unplaced(db, "x", transcript_confidence=1.5)
    with pytest.raises(ValueError):
        await store.set_unplaced_status(db, second, "lost")

"""Knowledge-base files: the repository's base is valid and complete; bad files
are rejected with errors naming the file, the row or item, and the field;
JSON and CSV export and re-import without loss."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from knowledge import KnowledgeFileError, export_csv, export_json, load_items
from knowledge.files import DEFAULT_DIRECTORY, dumps_csv, parse_csv, parse_json
from knowledge.model import MAX_ANSWER_SENTENCES, sentence_count
from hotline.settings import load_settings

CODES = tuple(d.code for d in load_settings(env={}).departments)


@pytest.fixture(scope="module")
def items():
    return load_items(DEFAULT_DIRECTORY, departments=CODES)


def test_repository_knowledge_base_covers_every_department(items):
    assert len(items) >= 100
    per_department = Counter(item.department for item in items)
    assert set(per_department) == set(CODES)
    assert min(per_department.values()) >= 5
    overview = Counter(item.department for item in items if item.overview)
    assert overview == Counter({code: 1 for code in CODES})
    for item in items:
        assert sentence_count(item.answer) <= MAX_ANSWER_SENTENCES
        assert item.keywords
    self_service = [i for i in items if i.self_service]
    assert any(i.id == "general.office_hours" for i in self_service)
    assert any(i.id == "general.address" for i in self_service)
    assert any(i.id == "general.progress" for i in self_service)
    # one file per department, named after it
    assert sorted(p.stem for p in DEFAULT_DIRECTORY.glob("*.json")) == sorted(CODES)


GOOD = {"id": "tax.sample", "question": "怎么领发票？", "answer": "在电子税务局申领。",
        "procedure": ["登录", "申领"], "materials": ["身份证"], "keywords": ["领发票"]}


def _json_file(tmp_path: Path, items: list[dict], department: str = "tax", name: str = "tax.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"department": department, "items": items}, ensure_ascii=False), encoding="utf-8")
    return path


def test_json_errors_name_file_item_and_field(tmp_path):
    _json_file(tmp_path, [
        GOOD,
        {**GOOD, "id": "Bad Id"},
        {**GOOD, "id": "tax.long", "answer": "第一句。第二句。第三句。"},
        {**GOOD, "id": "tax.nokw", "keywords": []},
        {**GOOD, "id": "tax.typo", "materails": ["x"]},
        {**GOOD, "id": "tax.dept", "department": "housing_fund"},
        {**GOOD, "id": "tax.flag", "self_service": "maybe"},
        {**GOOD, "id": "tax.short", "keywords": ["税"]},
    ])
    with pytest.raises(KnowledgeFileError) as caught:
        load_items(tmp_path, departments=CODES)
    found = {(p.where, p.field) for p in caught.value.problems}
    assert found == {("item 2", "id"), ("item 3", "answer"), ("item 4", "keywords"), ("item 5", "materails"),
                     ("item 6", "department"), ("item 7", "self_service"), ("item 8", "keywords")}
    message = str(caught.value)
    assert "tax.json: item 3 (id tax.long), field 'answer': has 3 sentences" in message
    assert all(p.file == "tax.json" for p in caught.value.problems)


def test_csv_errors_name_the_row(tmp_path):
    rows = [
        "id,department,question,answer,procedure,materials,keywords,self_service,overview",
        "tax.a,tax,怎么领发票？,在电子税务局申领。,登录|申领,身份证,领发票|发票,false,false",
        "tax.b,nowhere,问题？,回答。,,,发票额度,false,false",
        "tax.c,tax,,回答。,,,开票,false,false",
        'tax.d,tax,问题？,"回答,带逗号。",,,代开发票,yes,no',
        "tax.e,tax,问题？,回答。,,,,false,false",
    ]
    (tmp_path / "base.csv").write_text("\ufeff" + "\r\n".join(rows) + "\r\n", encoding="utf-8")
    with pytest.raises(KnowledgeFileError) as caught:
        load_items(tmp_path, departments=CODES)
    found = [(p.file, p.where, p.field) for p in caught.value.problems]
    assert found == [("base.csv", "row 3", "department"), ("base.csv", "row 4", "question"),
                     ("base.csv", "row 6", "keywords")]
    assert "base.csv: row 3 (id tax.b), field 'department': 'nowhere' is not a department" in str(caught.value)


def test_csv_header_problems(tmp_path):
    _, problems = parse_csv("id,question,answer\n", "x.csv", CODES)
    assert problems[0].where == "row 1" and "department" in problems[0].message
    _, problems = parse_csv("id,department,question,answer,keywords,colour\n", "x.csv", CODES)
    assert problems[0].field == "colour"
    _, problems = parse_csv("id,department,question,answer,keywords\nt.a,tax,q,a,kw,extra\n", "x.csv", CODES)
    assert problems[0].where == "row 2" and "cells" in problems[0].message


def test_invalid_json_and_duplicates_across_files(tmp_path):
    _json_file(tmp_path, [GOOD], name="a.json")
    _json_file(tmp_path, [{**GOOD, "keywords": ["发票"]}], name="b.json")
    (tmp_path / "c.json").write_text("{\"department\": \"tax\", \"items\": [", encoding="utf-8")
    with pytest.raises(KnowledgeFileError) as caught:
        load_items(tmp_path, departments=CODES)
    messages = [str(p) for p in caught.value.problems]
    assert any(m.startswith("b.json") and "duplicate id; first defined in a.json" in m for m in messages)
    assert any(m.startswith("c.json: line 1") and "not valid JSON" in m for m in messages)


def test_json_export_and_reimport_round_trip(tmp_path, items):
    written = export_json(items, tmp_path / "out")
    assert len(written) == len(CODES)
    assert load_items(tmp_path / "out", departments=CODES) == items
    # The repository's files are in the export's own style: exporting them changes nothing.
    for path in written:
        assert path.read_text(encoding="utf-8") == (DEFAULT_DIRECTORY / path.name).read_text(encoding="utf-8")


def test_csv_export_and_reimport_round_trip(tmp_path, items):
    path = export_csv(items, tmp_path / "base.csv")
    assert path.read_bytes().startswith("\ufeff".encode())
    assert load_items(path, departments=CODES) == items


def test_list_entries_with_the_csv_separator_are_rejected(tmp_path):
    _, problems = parse_json(json.dumps({"department": "tax", "items": [{**GOOD, "procedure": ["a|b"]}]}),
                             "tax.json", CODES)
    assert problems[0].field == "procedure" and "'|'" in problems[0].message
    bad = load_items(_json_file(tmp_path, [GOOD]), departments=CODES)[0]
    object.__setattr__(bad, "materials", ("a|b",))
    with pytest.raises(ValueError, match="contains"):
        dumps_csv([bad])


def test_alternative_questions_are_checked(tmp_path):
    _json_file(tmp_path, [
        {**GOOD, "alternatives": ["发票在哪领？", "领发票要什么"]},
        {**GOOD, "id": "tax.repeat", "question": "开发票找谁？", "alternatives": ["开发票找谁", "x" * 81]},
        {**GOOD, "id": "tax.empty", "question": "发票丢了？", "alternatives": ["  "]},
        {**GOOD, "id": "tax.twice", "question": "数电发票是什么？", "alternatives": ["发票在哪领"]},
    ])
    with pytest.raises(KnowledgeFileError) as caught:
        load_items(tmp_path, departments=CODES)
    found = [(p.item_id, p.field, p.message) for p in caught.value.problems]
    assert [(i, f) for i, f, _ in found] == [("tax.repeat", "alternatives"), ("tax.repeat", "alternatives"),
                                             ("tax.empty", "alternatives"), ("tax.twice", "alternatives")]
    assert "repeats the question" in found[0][2] and "at most 80" in found[1][2]
    # Across items, punctuation aside: one question belongs to one item.
    assert "'发票在哪领' is also asked by item tax.sample" in found[3][2]


def test_alternatives_survive_csv_and_json_and_may_be_left_out(tmp_path):
    item = load_items(_json_file(tmp_path, [{**GOOD, "alternatives": ["发票在哪领？", "领发票要什么"]}]),
                      departments=CODES)[0]
    assert item.alternatives == ("发票在哪领？", "领发票要什么")
    assert parse_csv(dumps_csv([item]), "x.csv", CODES) == ([item], [])
    assert "alternatives" not in item.__class__(**{**GOOD, "department": "tax"}).to_dict(compact=True)
    old_header = "id,department,question,answer,keywords\ntax.a,tax,怎么领发票？,在电子税务局申领。,领发票\n"
    items, problems = parse_csv(old_header, "old.csv", CODES)
    assert problems == [] and items[0].alternatives == ()

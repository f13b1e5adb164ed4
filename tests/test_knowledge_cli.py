"""``hotline knowledge``: check, seed, import (with the bad row named), export,
and the editors' queue of unplaced questions, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import json

import asyncpg

from routing import default_knowledge, route
from knowledge.store import record_unplaced
from hotline.cli import main


def test_check_needs_no_database(capsys, monkeypatch):
    monkeypatch.setenv("HOTLINE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["knowledge", "check"]) == 0
    out = capsys.readouterr().out
    assert "valid items" in out and "housing_fund" in out


def test_seed_import_export_and_unplaced(database_url, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    assert main(["knowledge", "seed"]) == 0
    seeded = capsys.readouterr().out
    assert "knowledge base replaced" in seeded and "0 deleted" in seeded

    assert main(["knowledge", "export", "--csv", str(tmp_path / "all.csv")]) == 0
    with open(tmp_path / "all.csv", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 100 and {"id", "question", "answer", "keywords"} <= set(rows[0])

    bad = tmp_path / "bad.csv"
    rows[1]["department"] = "no_such_department"
    rows[2]["question"] = ""
    with open(bad, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:3])
    capsys.readouterr()
    assert main(["knowledge", "import", str(bad)]) == 2
    problems = capsys.readouterr().err
    assert "row 3" in problems and "no_such_department" in problems and "row 4" in problems

    changed = tmp_path / "one.csv"
    rows[0]["answer"] = "新的答复"
    with open(changed, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerow(rows[0])
    assert main(["knowledge", "import", str(changed)]) == 0
    assert "1 changed" in capsys.readouterr().out

    assert main(["knowledge", "export", str(tmp_path / "json")]) == 0
    assert capsys.readouterr().out.startswith(f"exported {len(rows)} items")
    exported = json.loads((tmp_path / "json" / f"{rows[0]['department']}.json").read_text(encoding="utf-8"))
    assert any(item["answer"] == "新的答复" for item in exported["items"])

    assert main(["knowledge", "unplaced"]) == 0
    assert capsys.readouterr().out == ""
    asyncio.run(_store_unplaced(database_url, "那个手续怎么弄"))
    assert main(["knowledge", "unplaced"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(q["text"], q["status"], q["linkedid"]) for q in listed] == [("那个手续怎么弄", "new", "1795313795.0")]
    assert listed[0]["decision"]["action"] == "reprompt"


async def _store_unplaced(url: str, text: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        decision = route(text, default_knowledge())
        await record_unplaced(conn, text, transcript_confidence=0.8, linkedid="1795313795.0",
                              decision=decision.to_dict())
    finally:
        await conn.close()

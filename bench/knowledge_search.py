"""The console's knowledge-base search, three ways, on a real PostgreSQL.

* ``bigram``: what the console uses (knowledge/store.py ``search``): the query's
  character pairs, each weighted by its rarity, found with ``strpos`` in the
  question, keywords, answer, procedure and materials (a sequential scan);
* ``ilike``: the whole query as one ``ILIKE '%...%'`` over the same text;
* ``trgm``: pg_trgm's ``word_similarity`` (``<%``, threshold 0.3) with a GIN
  trigram index over the same text.

Quality: the held-out callers' sentences (tests/data/utterances_holdout*.jsonl,
the ``clean`` ones, as an agent would type what they hear) against the real
knowledge base: is the top item of the labelled department, is any of the top 5,
and how often nothing is found. Latency: p50/p95 per query with the real base
(156 items) and with it copied 64 times (~10 000 items, ten times the 984 of the
largest city's base).

    .venv/bin/python -m bench.knowledge_search [--copies 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import asyncpg

from knowledge import load_items, store
from knowledge.search import parse
from routing.evaluate import percentile
from tests.pg import create_migrated_database, postgres_server

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
SETS = ("utterances_holdout.jsonl", "utterances_holdout2.jsonl")
BENCH_DB = "hotline_bench_search"
DOCS = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
DROP TABLE IF EXISTS kb_docs;
CREATE TABLE kb_docs AS
SELECT id, department, lower(question || ' ' || array_to_string(keywords, ' ') || ' ' || answer || ' '
                             || array_to_string(procedure, ' ') || ' ' || array_to_string(materials, ' ')) AS doc
FROM knowledge_items;
CREATE INDEX kb_docs_trgm ON kb_docs USING gin (doc gin_trgm_ops);
ANALYZE kb_docs;
"""


async def bigram(conn: asyncpg.Connection, query: str) -> list[str]:
    return [h.item.department for h in await store.search(conn, query, limit=5)]


async def ilike(conn: asyncpg.Connection, query: str) -> list[str]:
    text = parse(query).text
    rows = await conn.fetch("SELECT department FROM kb_docs WHERE doc ILIKE '%' || $1 || '%' LIMIT 5", text)
    return [r["department"] for r in rows]


async def trgm(conn: asyncpg.Connection, query: str) -> list[str]:
    text = parse(query).text
    rows = await conn.fetch("SELECT department FROM kb_docs WHERE $1 <% doc "
                            "ORDER BY word_similarity($1, doc) DESC LIMIT 5", text)
    return [r["department"] for r in rows]


APPROACHES = {"bigram": bigram, "ilike": ilike, "trgm": trgm}


def lines() -> list[dict]:
    found = []
    for name in SETS:
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                if item.get("kind") == "clean":
                    found.append(item)
    return found


async def measure(conn: asyncpg.Connection, labelled: list[dict], repeat: int) -> dict:
    figures = {}
    for name, approach in APPROACHES.items():
        top1 = top5 = empty = 0
        times: list[float] = []
        for line in labelled:
            found = await approach(conn, line["text"])
            for _ in range(repeat):
                started = time.perf_counter()
                await approach(conn, line["text"])
                times.append((time.perf_counter() - started) * 1000)
            top1 += bool(found) and found[0] == line["intent"]
            top5 += line["intent"] in found
            empty += not found
        figures[name] = {"top1": round(top1 / len(labelled), 3), "top5": round(top5 / len(labelled), 3),
                         "nothing_found": round(empty / len(labelled), 3),
                         "p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2)}
    return figures


async def run(url: str, copies: int, repeat: int) -> dict:
    items = load_items()
    labelled = lines()
    report: dict = {"queries": len(labelled)}
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET pg_trgm.word_similarity_threshold = 0.3")
        for count in (1, copies):
            copied = [replace(i, id=f"{i.id}.c{n}" if n else i.id) for n in range(count) for i in items]
            await store.replace_all(conn, copied)
            await conn.execute(DOCS)
            report[f"{len(copied)}_items"] = await measure(conn, labelled, repeat)
    finally:
        await conn.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with postgres_server() as (admin_url, _cluster):
        url = asyncio.run(create_migrated_database(admin_url, BENCH_DB))
        print(json.dumps(asyncio.run(run(url, args.copies, args.repeat)), indent=2))


if __name__ == "__main__":
    main()

"""The knowledge base in PostgreSQL (asyncpg, SQL written out): seed or replace it
from the files, export it back, search it (the agents' console), and keep the questions the
voice menu could not place for the editors.

Every function takes an ``asyncpg.Connection`` or an ``asyncpg.Pool``.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Mapping, Sequence

import asyncpg

from knowledge.files import load_items
from knowledge.search import parse as parse_query
from knowledge.model import KnowledgeItem
from hotline.logs import get_logger

log = get_logger(__name__)

Db = asyncpg.Connection | asyncpg.Pool
UNPLACED_STATUSES = ("new", "in_progress", "answered", "dismissed")


@asynccontextmanager
async def _connection(db: Db) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


@dataclass(frozen=True)
class ReplaceResult:
    inserted: int
    updated: int
    unchanged: int
    deleted: tuple[str, ...]


_UPSERT = """
WITH incoming AS (
    SELECT *
    FROM jsonb_to_recordset($1::jsonb) AS x(
        id text, department text, question text, answer text, procedure text[],
        materials text[], keywords text[], alternatives text[], self_service boolean,
        overview boolean, position integer)
), upserted AS (
    INSERT INTO knowledge_items AS k
        (id, department, question, answer, procedure, materials, keywords,
         alternatives, self_service, overview, position)
    SELECT id, department, question, answer, procedure, materials, keywords,
           alternatives, self_service, overview, position
    FROM incoming
    ON CONFLICT (id) DO UPDATE SET
        department = EXCLUDED.department, question = EXCLUDED.question,
        answer = EXCLUDED.answer, procedure = EXCLUDED.procedure,
        materials = EXCLUDED.materials, keywords = EXCLUDED.keywords,
        alternatives = EXCLUDED.alternatives,
        self_service = EXCLUDED.self_service, overview = EXCLUDED.overview,
        position = EXCLUDED.position, updated_at = now()
    WHERE (k.department, k.question, k.answer, k.procedure, k.materials, k.keywords,
           k.alternatives, k.self_service, k.overview, k.position)
          IS DISTINCT FROM
          (EXCLUDED.department, EXCLUDED.question, EXCLUDED.answer, EXCLUDED.procedure,
           EXCLUDED.materials, EXCLUDED.keywords, EXCLUDED.alternatives, EXCLUDED.self_service,
           EXCLUDED.overview, EXCLUDED.position)
    RETURNING k.id, (k.created_at = k.updated_at) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
FROM upserted
"""


def _payload(items: Sequence[KnowledgeItem]) -> str:
    positions: dict[str, int] = {}
    rows = []
    for item in items:
        position = positions.get(item.department, 0)
        positions[item.department] = position + 1
        rows.append({**item.to_dict(), "position": position})
    return json.dumps(rows, ensure_ascii=False)


async def upsert_items(db: Db, items: Sequence[KnowledgeItem]) -> tuple[int, int]:
    """Insert new items and update changed ones; returns (inserted, updated)."""
    async with _connection(db) as conn:
        row = await conn.fetchrow(_UPSERT, _payload(items))
    return row["inserted"], row["updated"]


async def replace_all(db: Db, items: Sequence[KnowledgeItem]) -> ReplaceResult:
    """Make the table hold exactly ``items`` (the files' content), in one
    transaction: new ones inserted, changed ones updated, the rest deleted.
    Unchanged rows keep their ``updated_at``."""
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate knowledge item ids")
    async with _connection(db) as conn:
        async with conn.transaction():
            # One replace at a time, so two bridges starting together do not interleave.
            await conn.execute("LOCK TABLE knowledge_items IN SHARE ROW EXCLUSIVE MODE")
            row = await conn.fetchrow(_UPSERT, _payload(items))
            deleted = await conn.fetch(
                "DELETE FROM knowledge_items WHERE NOT (id = ANY($1::text[])) RETURNING id", ids)
    result = ReplaceResult(inserted=row["inserted"], updated=row["updated"],
                           unchanged=len(items) - row["inserted"] - row["updated"],
                           deleted=tuple(sorted(r["id"] for r in deleted)))
    log.info("knowledge.replaced", inserted=result.inserted, updated=result.updated,
             unchanged=result.unchanged, deleted=len(result.deleted))
    return result


async def seed_from_files(db: Db, path: str | Path | None = None, **load_options: Any) -> ReplaceResult:
    """Validate the files (``config/knowledge`` by default) and replace the table
    with them. Invalid files raise :class:`KnowledgeFileError` before any write."""
    return await replace_all(db, load_items(path, **load_options))


def _item(row: Mapping[str, Any]) -> KnowledgeItem:
    return KnowledgeItem(id=row["id"], department=row["department"], question=row["question"],
                         answer=row["answer"], procedure=tuple(row["procedure"]),
                         materials=tuple(row["materials"]), keywords=tuple(row["keywords"]),
                         alternatives=tuple(row["alternatives"]), self_service=row["self_service"], overview=row["overview"])


_COLUMNS = ("id, department, question, answer, procedure, materials, keywords, alternatives, "
            "self_service, overview")


async def fetch_items(db: Db, department: str | None = None) -> list[KnowledgeItem]:
    """All items (or one department's), in department and file order: the input
    for :func:`knowledge.files.export_json` / ``export_csv``."""
    async with _connection(db) as conn:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM knowledge_items
                WHERE $1::text IS NULL OR department = $1
                ORDER BY department, position, id""", department)
    return [_item(r) for r in rows]


async def fetch_item(db: Db, item_id: str) -> KnowledgeItem | None:
    async with _connection(db) as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM knowledge_items WHERE id = $1", item_id)
    return _item(row) if row else None


@dataclass(frozen=True)
class SearchHit:
    item: KnowledgeItem
    score: float     # higher first: the terms found, rarer ones and the question and keywords weighing more
    matched: int     # how many of the query's terms the item contains


# Per term: ln((items + 1) / items containing it) (rarer terms weigh more), times 3
# when the question (standard or alternative) has it, 3 when a keyword does, 1 when
# the answer, procedure or materials do. The whole query inside the question or a keyword doubles the sum.
_SEARCH = f"""
WITH terms AS (
    SELECT DISTINCT t FROM unnest($1::text[]) AS t
), docs AS (
    SELECT id, lower(question || ' ' || array_to_string(alternatives, ' ')) AS q, lower(array_to_string(keywords, ' ')) AS k,
           lower(answer || ' ' || array_to_string(procedure, ' ') || ' ' || array_to_string(materials, ' ')) AS b
    FROM knowledge_items
    WHERE $3::text IS NULL OR department = $3
), found AS (
    -- One strpos per item and term over all its text; the fields only where it is found.
    SELECT d.id, terms.t, strpos(d.q, terms.t) > 0 AS in_q, strpos(d.k, terms.t) > 0 AS in_k,
           strpos(d.b, terms.t) > 0 AS in_b
    FROM docs d CROSS JOIN terms
    WHERE strpos(d.q || ' ' || d.k || ' ' || d.b, terms.t) > 0
), rarity AS (
    SELECT t, ln(((SELECT count(*) FROM docs) + 1.0) / count(*)) AS idf FROM found GROUP BY t
), scored AS (
    SELECT f.id, count(*) AS matched,
           sum(r.idf * (3 * f.in_q::int + 3 * f.in_k::int + f.in_b::int)) AS score
    FROM found f JOIN rarity r USING (t)
    GROUP BY f.id
)
SELECT {_COLUMNS}, k.position, s.matched,
       s.score * CASE WHEN length($2) >= 2 AND (strpos(replace(lower(k.question), ' ', ''), $2) > 0
                                                 OR strpos(lower(array_to_string(k.keywords, ' ')), $2) > 0)
                      THEN 2 ELSE 1 END AS score
FROM scored s JOIN knowledge_items k USING (id)
ORDER BY score DESC, k.department, k.position
LIMIT $4
"""


async def search(db: Db, query: str, *, department: str | None = None, limit: int = 20) -> list[SearchHit]:
    """The agents' search over question, answer, procedure, materials and
    keywords (:mod:`knowledge.search`: the query's bigrams, rarer ones weighing
    more), best first; an item must contain at least one term."""
    parsed = parse_query(query)
    if parsed.empty:
        return []
    async with _connection(db) as conn:
        rows = await conn.fetch(_SEARCH, list(parsed.terms), parsed.text, department, limit)
    return [SearchHit(_item(r), float(r["score"]), r["matched"]) for r in rows]


# ------------------------------------------------------- unplaced questions

@dataclass(frozen=True)
class UnplacedQuestion:
    id: int
    text: str
    transcript_confidence: float | None
    linkedid: str | None
    decision: dict[str, Any]
    status: str
    knowledge_item_id: str | None
    note: str | None
    created_at: datetime
    updated_at: datetime


def _unplaced(row: Mapping[str, Any]) -> UnplacedQuestion:
    values = dict(row)
    values["decision"] = json.loads(values["decision"]) if isinstance(values["decision"], str) else values["decision"]
    return UnplacedQuestion(**values)


async def record_unplaced(db: Db, text: str, *, transcript_confidence: float | None = None,
                          linkedid: str | None = None, decision: Mapping[str, Any] | None = None) -> int:
    """Keep a question the router could not place; returns its id."""
    if transcript_confidence is not None and not 0.0 <= transcript_confidence <= 1.0:
        raise ValueError(f"transcript confidence {transcript_confidence} is not within 0..1")
    async with _connection(db) as conn:
        return await conn.fetchval(
            """INSERT INTO unplaced_questions (text, transcript_confidence, linkedid, decision)
               VALUES ($1, $2, $3, $4::jsonb) RETURNING id""",
            text, transcript_confidence, linkedid,
            json.dumps(dict(decision or {}), ensure_ascii=False))


async def list_unplaced(db: Db, statuses: Iterable[str] = ("new", "in_progress"),
                        limit: int = 100) -> list[UnplacedQuestion]:
    """The editors' queue, oldest first."""
    statuses = list(statuses)
    async with _connection(db) as conn:
        rows = await conn.fetch(
            """SELECT id, text, transcript_confidence, linkedid, decision, status,
                      knowledge_item_id, note, created_at, updated_at
               FROM unplaced_questions WHERE status = ANY($1::text[])
               ORDER BY created_at, id LIMIT $2""", statuses, limit)
    return [_unplaced(r) for r in rows]


async def set_unplaced_status(db: Db, question_id: int, status: str, *,
                              knowledge_item_id: str | None = None, note: str | None = None) -> bool:
    """Mark a question in progress, answered (by a knowledge item) or dismissed.
    Returns False if there is no such question."""
    if status not in UNPLACED_STATUSES:
        raise ValueError(f"status must be one of {', '.join(UNPLACED_STATUSES)}")
    async with _connection(db) as conn:
        result = await conn.execute(
            """UPDATE unplaced_questions
               SET status = $2, knowledge_item_id = COALESCE($3, knowledge_item_id),
                   note = COALESCE($4, note), updated_at = now()
               WHERE id = $1""", question_id, status, knowledge_item_id, note)
    return result.endswith(" 1")


async def add_item(db: Db, item: KnowledgeItem) -> bool:
    """Add a new item (last in its department); False when the id is taken
    (an existing item is never overwritten from here)."""
    async with _connection(db) as conn:
        added = await conn.fetchval(
            f"""INSERT INTO knowledge_items ({_COLUMNS}, position)
                SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                       COALESCE((SELECT max(position) + 1 FROM knowledge_items WHERE department = $2), 0)
                ON CONFLICT (id) DO NOTHING RETURNING id""",
            item.id, item.department, item.question, item.answer, list(item.procedure), list(item.materials),
            list(item.keywords), list(item.alternatives), item.self_service, item.overview)
    if added:
        log.info("knowledge.item_added", item=item.id, department=item.department)
    return added is not None

"""SQL for calls and their timelines (asyncpg, written out).

Writes are set-based: a whole batch of facts or timeline rows goes to PostgreSQL
in one statement through ``unnest``, which is what lets the bridge keep up with
thousands of events a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import asyncpg

from hotline.facts import CallFacts, TimelineEntry

# Call columns the tracker may set, with their SQL types. Facts are write-once
# (COALESCE keeps the stored value), except started_at, which keeps the earliest,
# and reconciled_from, a set that grows (see SOURCES_SEPARATOR).
CALL_COLUMNS: dict[str, str] = {
    "started_at": "timestamptz",
    "caller_channel": "text",
    "caller_number": "text",
    "caller_name": "text",
    "dialed_number": "text",
    "menu_started_at": "timestamptz",
    "department": "text",
    "queue": "text",
    "queued_at": "timestamptz",
    "abandoned_at": "timestamptz",
    "agent_interface": "text",
    "agent_name": "text",
    "agent_answered_at": "timestamptz",
    "hold_seconds": "integer",
    "talk_seconds": "integer",
    "ended_at": "timestamptz",
    "hangup_cause": "integer",
    "hangup_cause_text": "text",
    "lost_at": "timestamptz",
    "recording_path": "text",
    "ended_by": "text",
    "reconciled_from": "text",
}
# reconciled_from holds the sources that made or completed a call, sorted and
# joined with this; facts from another source add to it instead of being dropped.
SOURCES_SEPARATOR = ","


def sources_union(*values: str | None) -> str | None:
    """The sorted union of comma-separated source sets (None when empty)."""
    found = {s for v in values if v for s in v.split(SOURCES_SEPARATOR) if s}
    return SOURCES_SEPARATOR.join(sorted(found)) or None


def merge_calls(facts: Iterable[CallFacts], now: datetime) -> list[dict[str, Any]]:
    """One row per call: the first value seen for each column wins within a batch,
    as it does against the stored row."""
    merged: dict[str, dict[str, Any]] = {}
    for fact in facts:
        unknown = set(fact.fields) - set(CALL_COLUMNS)
        if unknown:
            raise ValueError(f"unknown call fields: {sorted(unknown)}")
        row = merged.setdefault(fact.linkedid, {})
        for column, value in fact.fields.items():
            if column == "started_at":
                row[column] = min(row.get(column, value), value)
            elif column == "reconciled_from":
                row[column] = sources_union(row.get(column), value)
            else:
                row.setdefault(column, value)
    for row in merged.values():
        # The row may already exist; LEAST() below keeps the stored, earlier start.
        row.setdefault("started_at", now)
    return [{"linkedid": linkedid, **row} for linkedid, row in merged.items()]


_UPSERT_CALLS = """
INSERT INTO calls (linkedid, {columns})
SELECT * FROM unnest($1::text[], {params})
ON CONFLICT (linkedid) DO UPDATE SET
    started_at = LEAST(calls.started_at, EXCLUDED.started_at),
    {updates},
    updated_at = now()
""".format(
    columns=", ".join(CALL_COLUMNS),
    params=", ".join(f"${i}::{t}[]" for i, t in enumerate(CALL_COLUMNS.values(), start=2)),
    updates=",\n    ".join(
        f"{c} = COALESCE(calls.{c}, EXCLUDED.{c})" for c in CALL_COLUMNS
        if c not in ("started_at", "reconciled_from")
    ) + """,
    reconciled_from = CASE
        WHEN calls.reconciled_from IS NULL OR EXCLUDED.reconciled_from IS NULL
            THEN COALESCE(calls.reconciled_from, EXCLUDED.reconciled_from)
        ELSE (SELECT string_agg(DISTINCT s, ',' ORDER BY s)
              FROM unnest(string_to_array(calls.reconciled_from || ',' || EXCLUDED.reconciled_from, ',')) AS s)
    END""",
)

_INSERT_TIMELINE = """
INSERT INTO call_events (linkedid, uniqueid, occurred_at, kind, detail, dedupe_key)
SELECT l, u, o, k, d::jsonb, x
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[])
     AS t(l, u, o, k, d, x)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING dedupe_key
"""

async def write_calls(conn: asyncpg.Connection, facts: Sequence[CallFacts]) -> int:
    rows = merge_calls(facts, datetime.now(timezone.utc))
    if not rows:
        return 0
    arrays = [[r["linkedid"] for r in rows]] + [[r.get(c) for r in rows] for c in CALL_COLUMNS]
    await conn.execute(_UPSERT_CALLS, *arrays)
    return len(rows)


async def write_timeline(conn: asyncpg.Connection, entries: Sequence[TimelineEntry]) -> set[str]:
    """Insert the rows not yet stored; returns the dedupe keys of those inserted."""
    if not entries:
        return set()
    inserted = await conn.fetch(
        _INSERT_TIMELINE,
        [e.linkedid for e in entries],
        [e.uniqueid for e in entries],
        [e.occurred_at for e in entries],
        [e.kind for e in entries],
        [json.dumps(e.detail, ensure_ascii=False, default=str) for e in entries],
        [e.dedupe_key for e in entries],
    )
    return {r["dedupe_key"] for r in inserted}


async def open_calls(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT linkedid, recording_path FROM calls WHERE ended_at IS NULL AND lost_at IS NULL"
    )


async def call_with_outcome(conn: asyncpg.Connection, linkedid: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM call_outcomes WHERE linkedid = $1", linkedid)


async def timeline(conn: asyncpg.Connection, linkedid: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT occurred_at, kind, uniqueid, detail FROM call_events WHERE linkedid = $1 ORDER BY occurred_at, id",
        linkedid,
    )


_RECENT_COLUMNS = """linkedid, started_at, caller_number, caller_name, department, queue,
                  agent_name, hold_seconds, talk_seconds, outcome, ended_by"""


async def recent_calls(conn: asyncpg.Connection, limit: int = 20,
                       before: tuple[datetime, str] | None = None) -> list[asyncpg.Record]:
    """Newest first. ``before``: (started_at, linkedid) of the last call of the
    previous page (keyset paging: each page is an index range scan, however deep)."""
    if before is None:
        return await conn.fetch(
            f"""SELECT {_RECENT_COLUMNS} FROM call_outcomes
                ORDER BY started_at DESC, linkedid DESC LIMIT $1""",
            limit,
        )
    return await conn.fetch(
        f"""SELECT {_RECENT_COLUMNS} FROM call_outcomes
            WHERE (started_at, linkedid) < ($2::timestamptz, $3::text)
            ORDER BY started_at DESC, linkedid DESC LIMIT $1""",
        limit, before[0], before[1],
    )


async def recent_calls_json(conn: asyncpg.Connection, limit: int,
                            before: tuple[datetime, str] | None = None) -> tuple[str, int, tuple[datetime, str] | None]:
    """The page of :func:`recent_calls` as PostgreSQL encodes it: (a JSON array
    of the calls, how many, (started_at, linkedid) of the last one). The API
    passes the text through, so encoding hundreds of rows costs the database
    process, not the event loop the AMI reader shares."""
    where = "WHERE (started_at, linkedid) < ($2::timestamptz, $3::text)" if before is not None else ""
    args: list[Any] = [limit] + (list(before) if before is not None else [])
    row = await conn.fetchrow(
        f"""WITH page AS (
                SELECT {_RECENT_COLUMNS} FROM call_outcomes {where}
                ORDER BY started_at DESC, linkedid DESC LIMIT $1)
            SELECT coalesce(json_agg(page ORDER BY started_at DESC, linkedid DESC), '[]')::text AS calls,
                   count(*) AS n,
                   (SELECT started_at FROM page ORDER BY started_at, linkedid LIMIT 1) AS last_started_at,
                   (SELECT linkedid FROM page ORDER BY started_at, linkedid LIMIT 1) AS last_linkedid
            FROM page""",
        *args,
    )
    last = (row["last_started_at"], row["last_linkedid"]) if row["n"] else None
    return row["calls"], row["n"], last


_INSERT_DEAD_LETTER = """
INSERT INTO write_dead_letters (kind, sink, linkedid, payload, error, error_class, sqlstate)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""


async def write_dead_letter(conn: asyncpg.Connection, *, kind: str, sink: str | None, linkedid: str | None,
                            payload: str, error: str, error_class: str, sqlstate: str | None) -> None:
    await conn.execute(_INSERT_DEAD_LETTER, kind, sink, linkedid, payload, error, error_class, sqlstate)


async def dead_letters(conn: asyncpg.Connection, ids: Sequence[int] | None = None, *,
                       include_replayed: bool = False) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM write_dead_letters
           WHERE ($1::bigint[] IS NULL OR id = ANY($1)) AND ($2 OR replayed_at IS NULL)
           ORDER BY id""",
        list(ids) if ids is not None else None, include_replayed,
    )


async def mark_replayed(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    await conn.execute("UPDATE write_dead_letters SET replayed_at = now() WHERE id = ANY($1::bigint[])", list(ids))


# -- catching up with Asterisk's own records (ivr/calls/catch_up.py) -----------------------

# What the reconciler may fill in, and needs to know is already there.
RECONCILED_COLUMNS = tuple(c for c in CALL_COLUMNS if c not in ("menu_started_at", "hangup_cause",
                                                                 "hangup_cause_text", "ended_by"))


async def calls_by_linkedid(conn: asyncpg.Connection, linkedids: Sequence[str]) -> dict[str, asyncpg.Record]:
    """The stored facts of these calls (those that exist), by linkedid."""
    if not linkedids:
        return {}
    rows = await conn.fetch(
        f"SELECT linkedid, {', '.join(RECONCILED_COLUMNS)} FROM calls WHERE linkedid = ANY($1::text[])",
        list(linkedids))
    return {r["linkedid"]: r for r in rows}


@dataclass(frozen=True)
class LogPosition:
    """How far one of Asterisk's files was read (a sink row of the call writer,
    written in the same transaction as the facts read up to there)."""

    node: str
    source: str
    path: str
    device: int
    inode: int
    head_sha1: str
    byte_offset: int
    lines_read: int
    lines_skipped: int


async def log_positions(conn: asyncpg.Connection, node: str) -> dict[str, LogPosition]:
    rows = await conn.fetch(
        """SELECT node, source, path, device, inode, head_sha1, byte_offset, lines_read, lines_skipped
           FROM asterisk_log_positions WHERE node = $1""", node)
    return {r["source"]: LogPosition(**dict(r)) for r in rows}


_SAVE_POSITION = """
INSERT INTO asterisk_log_positions (node, source, path, device, inode, head_sha1, byte_offset,
                                    lines_read, lines_skipped)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (node, source) DO UPDATE SET
    path = EXCLUDED.path, device = EXCLUDED.device, inode = EXCLUDED.inode,
    head_sha1 = EXCLUDED.head_sha1, byte_offset = EXCLUDED.byte_offset,
    lines_read = asterisk_log_positions.lines_read + EXCLUDED.lines_read,
    lines_skipped = asterisk_log_positions.lines_skipped + EXCLUDED.lines_skipped,
    updated_at = now()
"""


async def save_log_positions(conn: asyncpg.Connection, rows: Sequence[LogPosition]) -> None:
    """The call writer's ``asterisk_log_positions`` sink; ``lines_read`` and
    ``lines_skipped`` are what this row adds."""
    for r in rows:
        await conn.execute(_SAVE_POSITION, r.node, r.source, r.path, r.device, r.inode, r.head_sha1,
                           r.byte_offset, r.lines_read, r.lines_skipped)

"""SQL for the console (asyncpg, written out): what the screen-pop reads about a
call and its caller, and the calls' dispositions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from agents.console.dispositions import Disposition

# The timeline rows the screen-pop reads: what the caller said or pressed in the menu.
MENU_KINDS = ("voice.heard", "voice.confirm", "menu.key", "menu.routed")


async def menu_rows(conn: asyncpg.Connection, linkedid: str) -> list[dict[str, Any]]:
    """The call's menu rows, in order: ``{"kind", "detail"}``."""
    rows = await conn.fetch(
        "SELECT kind, detail FROM call_events WHERE linkedid = $1 AND kind = ANY($2::text[]) "
        "ORDER BY occurred_at, id", linkedid, list(MENU_KINDS))
    return [{"kind": r["kind"], "detail": _json(r["detail"])} for r in rows]


async def previous_calls(conn: asyncpg.Connection, caller_number: str, linkedid: str, at: datetime,
                         days: int, limit: int) -> list[dict[str, Any]]:
    """The caller's calls in the ``days`` before ``at`` (this one left out), newest
    first, with how each ended and its latest disposition, if any."""
    rows = await conn.fetch(
        """SELECT c.linkedid, c.started_at, c.department, c.queue, c.agent_name, c.talk_seconds, c.outcome,
                  d.outcome AS disposition, d.note AS disposition_note, d.agent_name AS disposed_by
           FROM call_outcomes c
           LEFT JOIN LATERAL (SELECT outcome, note, agent_name FROM call_dispositions
                              WHERE linkedid = c.linkedid ORDER BY updated_at DESC, id DESC LIMIT 1) d ON true
           WHERE c.caller_number = $1 AND c.linkedid <> $2
             AND c.started_at >= $3::timestamptz - $4::interval AND c.started_at <= $3::timestamptz
           ORDER BY c.started_at DESC LIMIT $5""",
        caller_number, linkedid, at, timedelta(days=days), limit)
    return [dict(r) for r in rows]


async def knowledge_for(conn: asyncpg.Connection, department: str, item_id: str | None,
                        limit: int) -> list[dict[str, Any]]:
    """The department's knowledge items, the matched one first, then in the
    editors' order."""
    rows = await conn.fetch(
        """SELECT id, department, question, answer, procedure, materials FROM knowledge_items
           WHERE department = $1 OR id = $2
           ORDER BY (id = $2) DESC NULLS LAST, (department = $1) DESC, overview, position, id LIMIT $3""",
        department, item_id, limit)
    return [dict(r) for r in rows]


async def knowledge_question(conn: asyncpg.Connection, item_id: str) -> str | None:
    return await conn.fetchval("SELECT question FROM knowledge_items WHERE id = $1", item_id)


async def answered_by(conn: asyncpg.Connection, linkedid: str, interface: str) -> str | None:
    """The caller's Uniqueid if ``interface`` answered the call (its
    agent.connected row), else None."""
    return await conn.fetchval(
        "SELECT uniqueid FROM call_events WHERE linkedid = $1 AND kind = 'agent.connected' "
        "AND detail->>'interface' = $2 ORDER BY occurred_at DESC LIMIT 1", linkedid, interface)


@dataclass(frozen=True)
class StoredDisposition:
    id: int
    linkedid: str
    uniqueid: str | None
    account_id: int
    agent_interface: str
    agent_name: str
    outcome: str
    note: str
    knowledge_item_id: str | None
    knowledge_question: str | None
    created_at: datetime
    updated_at: datetime
    previous_outcome: str | None      # what it said before this correction (None: new)

    def as_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


_UPSERT = """
WITH before AS (
    SELECT outcome FROM call_dispositions WHERE linkedid = $1 AND account_id = $3
)
INSERT INTO call_dispositions AS d (linkedid, uniqueid, account_id, agent_interface, agent_name, outcome, note,
                                    knowledge_item_id, knowledge_question)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (linkedid, account_id) DO UPDATE SET
    uniqueid = EXCLUDED.uniqueid, agent_interface = EXCLUDED.agent_interface, agent_name = EXCLUDED.agent_name,
    outcome = EXCLUDED.outcome, note = EXCLUDED.note, knowledge_item_id = EXCLUDED.knowledge_item_id,
    knowledge_question = EXCLUDED.knowledge_question, updated_at = now()
RETURNING d.*, (SELECT outcome FROM before) AS previous_outcome
"""


async def save_disposition(conn: asyncpg.Connection, disposition: Disposition, uniqueid: str | None,
                           account_id: int, interface: str, agent_name: str,
                           knowledge_question: str | None) -> StoredDisposition:
    """Store the agent's disposition of the call (a second one from the same
    agent replaces the first)."""
    row = await conn.fetchrow(_UPSERT, disposition.linkedid, uniqueid, account_id, interface, agent_name,
                              disposition.outcome.value, disposition.note, disposition.knowledge_item_id,
                              knowledge_question)
    return StoredDisposition(**dict(row))


async def dispositions_of(conn: asyncpg.Connection, linkedid: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM call_dispositions WHERE linkedid = $1 ORDER BY created_at, id",
                            linkedid)
    return [dict(r) for r in rows]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def call_caller(conn: asyncpg.Connection, linkedid: str) -> asyncpg.Record | None:
    """Who called (for a call the console did not see offered: its wrap-up after a reload)."""
    return await conn.fetchrow("SELECT caller_number, caller_name, queue FROM calls WHERE linkedid = $1", linkedid)

"""SQL for tickets, their timelines, timers and the 12345 outbox (asyncpg,
written out). Every function takes a connection; the caller holds the
transaction. Nothing here deletes: the schema refuses it anyway."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import asyncpg

from tickets.model import AUTOMATIC_SQL, DUE_COLUMN, MET_COLUMN, Deadline, TimerPlan

# Columns a new ticket may be given (the rest have defaults or are set by moves).
NEW_COLUMNS = ("source", "state", "linkedid", "caller_number", "department", "assignee_account_id", "subject",
               "description", "reason", "callback", "knowledge_gap", "unplaced_question_id", "survey_rating",
               "opened_by", "opened_at", "verify_due", "answer_due", "knowledge_due", "callback_number")
# Columns a move may set.
CHANGE_COLUMNS = frozenset({"state", "department", "assignee_account_id", "callback", "callback_number",
                            "knowledge_gap",
                            "knowledge_due", "knowledge_done_at", "knowledge_item_id", "unplaced_question_id",
                            "survey_rating", "verify_due", "verified_at", "answer_due", "answered_at",
                            "escalated_at", "reopened_count", "dispatched_at", "closed_at"})


def _json(value: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(value or {}), ensure_ascii=False, default=str)


def decode(row: asyncpg.Record | None) -> dict[str, Any] | None:
    """A row as a dict, with its jsonb columns decoded."""
    if row is None:
        return None
    out = dict(row)
    for key in ("detail", "payload"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


async def now(conn: asyncpg.Connection) -> datetime:
    """The database's clock (the transaction's start): one clock for every process."""
    return await conn.fetchval("SELECT now()")


async def insert_ticket(conn: asyncpg.Connection, values: Mapping[str, Any]) -> dict[str, Any]:
    columns = [c for c in NEW_COLUMNS if c in values]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    row = await conn.fetchrow(
        f"INSERT INTO tickets ({', '.join(columns)}) VALUES ({placeholders}) RETURNING *",
        *[values[c] for c in columns])
    return dict(row)


async def lock_ticket(conn: asyncpg.Connection, ticket_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM tickets WHERE id = $1 FOR UPDATE", ticket_id)
    return dict(row) if row else None


async def lock_automatic_ticket(conn: asyncpg.Connection, linkedid: str) -> dict[str, Any] | None:
    """The call's callback / knowledge-gap ticket, locked, if it has one."""
    row = await conn.fetchrow(
        f"SELECT * FROM tickets WHERE linkedid = $1 AND source IN {AUTOMATIC_SQL} FOR UPDATE", linkedid)
    return dict(row) if row else None


async def insert_automatic_ticket(conn: asyncpg.Connection, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """Insert unless the call already has an automatic ticket (then None)."""
    columns = [c for c in NEW_COLUMNS if c in values]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    row = await conn.fetchrow(
        f"""INSERT INTO tickets ({', '.join(columns)}) VALUES ({placeholders})
            ON CONFLICT (linkedid) WHERE linkedid IS NOT NULL AND source IN {AUTOMATIC_SQL}
            DO NOTHING RETURNING *""",
        *[values[c] for c in columns])
    return dict(row) if row else None


async def latest_ticket_of_call(conn: asyncpg.Connection, linkedid: str,
                                sources: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The call's most recent ticket (of ``sources``), locked."""
    row = await conn.fetchrow(
        """SELECT * FROM tickets WHERE linkedid = $1 AND ($2::text[] IS NULL OR source = ANY($2))
           ORDER BY opened_at DESC, id DESC LIMIT 1 FOR UPDATE""", linkedid, list(sources) if sources else None)
    return dict(row) if row else None


async def update_ticket(conn: asyncpg.Connection, ticket_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - CHANGE_COLUMNS
    if unknown:
        raise ValueError(f"not a ticket column a move may set: {sorted(unknown)}")
    columns = list(changes)
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    row = await conn.fetchrow(
        f"UPDATE tickets SET {sets}, updated_at = now() WHERE id = $1 RETURNING *",
        ticket_id, *[changes[c] for c in columns])
    return dict(row)


async def add_event(conn: asyncpg.Connection, ticket_id: int, kind: str, actor: str, *,
                    reason: str | None = None, from_state: str | None = None, to_state: str | None = None,
                    detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
    row = await conn.fetchrow(
        """INSERT INTO ticket_events (ticket_id, kind, actor, reason, from_state, to_state, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING *""",
        ticket_id, kind, actor, reason, from_state, to_state, _json(detail))
    return decode(row) or {}


async def events(conn: asyncpg.Connection, ticket_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM ticket_events WHERE ticket_id = $1 ORDER BY at, id", ticket_id)
    return [decode(r) or {} for r in rows]


# ------------------------------------------------------------------ timers

async def add_timers(conn: asyncpg.Connection, ticket_id: int, plans: Iterable[TimerPlan]) -> int:
    plans = list(plans)
    if not plans:
        return 0
    await conn.execute(
        """INSERT INTO ticket_timers (ticket_id, deadline, action, due_at, deadline_at)
           SELECT $1, d, a, u, x FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
                AS t(d, a, u, x)""",
        ticket_id, [p.deadline.value for p in plans], [p.action for p in plans],
        [p.due_at for p in plans], [p.deadline_at for p in plans])
    return len(plans)


async def cancel_timers(conn: asyncpg.Connection, ticket_id: int, deadlines: Iterable[Deadline]) -> int:
    result = await conn.execute(
        """UPDATE ticket_timers SET cancelled_at = now()
           WHERE ticket_id = $1 AND deadline = ANY($2::text[]) AND fired_at IS NULL AND cancelled_at IS NULL""",
        ticket_id, [d.value for d in deadlines])
    return int(result.split()[-1])


async def claim_due_timers(conn: asyncpg.Connection, limit: int) -> list[dict[str, Any]]:
    """Due timers no other worker holds, locked until the transaction ends,
    with their ticket's state (SKIP LOCKED: two workers never get the same row)."""
    rows = await conn.fetch(
        """SELECT tt.*, t.state, t.number, t.assignee_account_id, t.department, t.subject, t.linkedid,
                  t.verified_at, t.answered_at, t.knowledge_done_at, t.escalated_at
           FROM ticket_timers tt JOIN tickets t ON t.id = tt.ticket_id
           WHERE tt.id IN (SELECT id FROM ticket_timers
                           WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= now()
                           ORDER BY due_at, id LIMIT $1
                           FOR UPDATE SKIP LOCKED)
           ORDER BY tt.due_at, tt.id""", limit)
    return [dict(r) for r in rows]


async def mark_timers(conn: asyncpg.Connection, fired: Sequence[int], cancelled: Sequence[int], origin: str) -> None:
    if fired:
        await conn.execute("UPDATE ticket_timers SET fired_at = now(), fired_by = $2 WHERE id = ANY($1::bigint[])",
                           list(fired), origin)
    if cancelled:
        await conn.execute("UPDATE ticket_timers SET cancelled_at = now() WHERE id = ANY($1::bigint[])",
                           list(cancelled))


async def next_timer_due(conn: asyncpg.Connection) -> datetime | None:
    return await conn.fetchval(
        "SELECT min(due_at) FROM ticket_timers WHERE fired_at IS NULL AND cancelled_at IS NULL")


# ------------------------------------------------------------------ the 12345 outbox

async def add_dispatch(conn: asyncpg.Connection, ticket_id: int, key: str, payload: Mapping[str, Any],
                       actor: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        """INSERT INTO ticket_dispatches (ticket_id, idempotency_key, payload, created_by)
           VALUES ($1, $2, $3::jsonb, $4) RETURNING *""", ticket_id, key, _json(payload), actor)
    return decode(row) or {}


async def claim_dispatches(conn: asyncpg.Connection, limit: int, lease_seconds: float,
                           worker: str) -> list[dict[str, Any]]:
    """Pending dispatches due now and not leased by a live worker, leased to
    ``worker`` for ``lease_seconds`` (committed at once: the POST happens
    outside any transaction; a worker that dies lets the lease run out)."""
    rows = await conn.fetch(
        """UPDATE ticket_dispatches d
           SET attempts = attempts + 1, leased_until = now() + make_interval(secs => $2),
               leased_by = $3, last_attempt_at = now()
           WHERE id IN (SELECT id FROM ticket_dispatches
                        WHERE status = 'pending' AND next_attempt_at <= now()
                              AND (leased_until IS NULL OR leased_until < now())
                        ORDER BY next_attempt_at, id LIMIT $1
                        FOR UPDATE SKIP LOCKED)
           RETURNING d.*""", limit, lease_seconds, worker)
    return [decode(r) or {} for r in rows]


async def lock_dispatch(conn: asyncpg.Connection, *, dispatch_id: int | None = None, key: str | None = None,
                        external_id: str | None = None) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT * FROM ticket_dispatches
           WHERE ($1::bigint IS NOT NULL AND id = $1) OR ($2::text IS NOT NULL AND idempotency_key = $2)
                 OR ($3::text IS NOT NULL AND external_id = $3)
           ORDER BY id LIMIT 1 FOR UPDATE""", dispatch_id, key, external_id)
    return decode(row)


async def update_dispatch(conn: asyncpg.Connection, dispatch_id: int, **changes: Any) -> None:
    columns = list(changes)
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    await conn.execute(f"UPDATE ticket_dispatches SET {sets} WHERE id = $1", dispatch_id,
                       *[changes[c] for c in columns])


async def retry_dispatch_later(conn: asyncpg.Connection, dispatch_id: int, worker: str, delay: float,
                               error: str) -> bool:
    """Give the lease back with the next attempt ``delay`` seconds away; False
    when the row is no longer this worker's pending one."""
    result = await conn.execute(
        """UPDATE ticket_dispatches
           SET next_attempt_at = now() + make_interval(secs => $3), leased_until = NULL, leased_by = NULL,
               last_error = $4
           WHERE id = $1 AND status = 'pending' AND leased_by = $2""", dispatch_id, worker, delay, error)
    return result.endswith(" 1")


async def release_dispatches(conn: asyncpg.Connection, worker: str) -> None:
    await conn.execute("""UPDATE ticket_dispatches SET leased_until = NULL, leased_by = NULL
                          WHERE leased_by = $1 AND status = 'pending'""", worker)


async def dispatches_of(conn: asyncpg.Connection, ticket_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM ticket_dispatches WHERE ticket_id = $1 ORDER BY id", ticket_id)
    return [decode(r) or {} for r in rows]


# ------------------------------------------------------------------ calls the hotline places

async def add_call(conn: asyncpg.Connection, ticket_id: int, purpose: str, number: str, extension: str | None,
                   queue: str | None, attempt: int, due_at: datetime, requested_by: str) -> dict[str, Any] | None:
    """A call to place (one attempt); None when the ticket already has one of
    that purpose waiting or ringing."""
    row = await conn.fetchrow(
        """INSERT INTO ticket_calls (ticket_id, purpose, number, extension, queue, attempt, due_at, requested_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (ticket_id, purpose) WHERE state IN ('pending', 'dialing') DO NOTHING
           RETURNING *""", ticket_id, purpose, number, extension, queue, attempt, due_at, requested_by)
    return decode(row)


async def open_call(conn: asyncpg.Connection, ticket_id: int, purpose: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("""SELECT * FROM ticket_calls WHERE ticket_id = $1 AND purpose = $2
                                 AND state IN ('pending', 'dialing')""", ticket_id, purpose)
    return decode(row)


async def cancel_calls(conn: asyncpg.Connection, ticket_id: int) -> int:
    """Calls still waiting for a ticket that no longer needs them (closed)."""
    result = await conn.execute("""UPDATE ticket_calls SET state = 'cancelled', settled_at = now()
                                   WHERE ticket_id = $1 AND state = 'pending'""", ticket_id)
    return int(result.split()[-1])


async def claim_calls(conn: asyncpg.Connection, limit: int, lease_seconds: float,
                      worker: str) -> list[dict[str, Any]]:
    """Due calls nobody holds, marked as ringing and leased to ``worker``
    (committed before the Originate goes out), each with its ActionID."""
    rows = await conn.fetch(
        """UPDATE ticket_calls c
           SET state = 'dialing', action_id = 'ticket-call-' || c.id, sent_at = now(),
               leased_until = now() + make_interval(secs => $2), leased_by = $3
           WHERE id IN (SELECT id FROM ticket_calls WHERE state = 'pending' AND due_at <= now()
                        ORDER BY due_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING c.*""", limit, lease_seconds, worker)
    return [decode(r) or {} for r in rows]


async def lock_ringing_call(conn: asyncpg.Connection, action_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM ticket_calls WHERE action_id = $1 AND state = 'dialing' FOR UPDATE",
                              action_id)
    return decode(row)


async def expired_calls(conn: asyncpg.Connection, limit: int) -> list[str]:
    """ActionIDs of calls whose lease ran out with no answer from Asterisk."""
    rows = await conn.fetch(
        """SELECT action_id FROM ticket_calls WHERE state = 'dialing' AND leased_until < now()
           ORDER BY leased_until LIMIT $1""", limit)
    return [r["action_id"] for r in rows]


async def settle_call(conn: asyncpg.Connection, call_id: int, *, state: str, result: str, response: str | None,
                      reason_code: int | None, detail: Mapping[str, Any]) -> None:
    await conn.execute(
        """UPDATE ticket_calls SET state = $2, result = $3, response = $4, reason_code = $5, detail = $6::jsonb,
                  settled_at = now(), leased_until = NULL
           WHERE id = $1""", call_id, state, result, response, reason_code, _json(detail))


async def next_call_due(conn: asyncpg.Connection) -> datetime | None:
    """When the next call is due or the next lease runs out."""
    return await conn.fetchval(
        """SELECT min(t) FROM (SELECT min(due_at) AS t FROM ticket_calls WHERE state = 'pending'
                               UNION ALL
                               SELECT min(leased_until) FROM ticket_calls WHERE state = 'dialing') AS due""")


async def calls_of(conn: asyncpg.Connection, ticket_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM ticket_calls WHERE ticket_id = $1 ORDER BY id", ticket_id)
    return [decode(r) or {} for r in rows]


async def add_survey(conn: asyncpg.Connection, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The survey's answer (or why there is none) on its call; None if this
    channel's survey is stored already (a replayed session)."""
    row = await conn.fetchrow(
        """INSERT INTO call_surveys (linkedid, uniqueid, kind, ticket_id, outcome, rating, key, asked, started_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (linkedid, uniqueid, kind) DO NOTHING RETURNING *""",
        values["linkedid"], values["uniqueid"], values["kind"], values.get("ticket_id"), values["outcome"],
        values.get("rating"), values.get("key"), values["asked"], values["started_at"])
    return decode(row)


async def survey_ticket(conn: asyncpg.Connection, survey_id: int, ticket_id: int) -> None:
    """The ticket a survey answer went to (opened, reopened or noted on)."""
    await conn.execute("UPDATE call_surveys SET ticket_id = $2 WHERE id = $1", survey_id, ticket_id)


async def surveys_of(conn: asyncpg.Connection, linkedid: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM call_surveys WHERE linkedid = $1 ORDER BY id", linkedid)
    return [dict(r) for r in rows]


async def agent_extension(conn: asyncpg.Connection, account_id: int) -> str | None:
    """The desk phone of an agent's account (accounts, migration 008)."""
    return await conn.fetchval("SELECT extension FROM accounts WHERE id = $1 AND NOT disabled", account_id)


# ------------------------------------------------------------------ reading

async def ticket(conn: asyncpg.Connection, ticket_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket_id)
    return dict(row) if row else None


async def call_of(conn: asyncpg.Connection, linkedid: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT linkedid, started_at, caller_number, caller_name, department, queue, agent_interface,
                  agent_name, agent_answered_at, abandoned_at, hold_seconds, talk_seconds, ended_at, outcome
           FROM call_outcomes WHERE linkedid = $1""", linkedid)
    return dict(row) if row else None


async def transcript_of(conn: asyncpg.Connection, linkedid: str) -> list[dict[str, Any]]:
    """What the voice menu heard on the call, turn by turn, and the questions it
    kept for the editors."""
    rows = await conn.fetch(
        """SELECT occurred_at AS at, detail->'transcripts' AS transcripts, detail->>'reaction' AS reaction,
                  detail->>'department' AS department
           FROM call_events WHERE linkedid = $1 AND kind = 'voice.heard' ORDER BY occurred_at, id""", linkedid)
    out = []
    for r in rows:
        item = dict(r)
        item["transcripts"] = json.loads(item["transcripts"]) if item["transcripts"] else []
        out.append(item)
    return out


async def unplaced_of(conn: asyncpg.Connection, linkedid: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, text, status, created_at FROM unplaced_questions WHERE linkedid = $1 ORDER BY id", linkedid)
    return [dict(r) for r in rows]


async def recordings_of(conn: asyncpg.Connection, linkedid: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, uniqueid, asterisk_path, status, duration_seconds, bytes
           FROM recordings WHERE linkedid = $1 ORDER BY id""", linkedid)
    return [dict(r) for r in rows]


# A ticket (alias t) that is open with a deadline passed unmet.
OVERDUE = """(t.state <> 'closed' AND (
            (t.verified_at IS NULL AND t.verify_due < now() AND t.state IN ('to_verify', 'reopened'))
         OR (t.answered_at IS NULL AND t.answer_due < now() AND t.state IN ('to_verify', 'reopened', 'in_progress'))
         OR (t.knowledge_gap AND t.knowledge_done_at IS NULL AND t.knowledge_due < now())))"""

LIST_FILTER = f"""
    ($1::timestamptz IS NULL OR t.opened_at >= $1)
    AND ($2::timestamptz IS NULL OR t.opened_at < $2)
    AND ($3::text IS NULL OR t.department = $3)
    AND ($4::text[] IS NULL OR t.state = ANY($4))
    AND (NOT $5 OR {OVERDUE})
    AND ($6::bigint IS NULL OR t.assignee_account_id = $6)
    AND ($7::text IS NULL OR t.opened_by = $7 OR t.assignee_account_id = $8)
"""


async def find_tickets(conn: asyncpg.Connection, *, since: datetime | None = None, until: datetime | None = None,
                       department: str | None = None, states: Sequence[str] | None = None,
                       overdue: bool = False, assignee: int | None = None, visible_to: str | None = None,
                       visible_account: int | None = None, limit: int = 100,
                       before_id: int | None = None) -> list[dict[str, Any]]:
    """Tickets newest first, filtered. ``overdue``: open with a deadline passed
    unmet. ``visible_to``: only those this actor opened or whose assignee is
    ``visible_account`` (an agent's own)."""
    rows = await conn.fetch(
        f"""SELECT t.*, (SELECT count(*) FROM ticket_dispatches d WHERE d.ticket_id = t.id) AS dispatches,
                   (SELECT max(d.external_id) FROM ticket_dispatches d WHERE d.ticket_id = t.id) AS external_id
            FROM tickets t
            WHERE {LIST_FILTER} AND ($9::bigint IS NULL OR t.id < $9)
            ORDER BY t.opened_at DESC, t.id DESC LIMIT $10""",
        since, until, department, list(states) if states else None, overdue, assignee, visible_to,
        visible_account, before_id, limit)
    return [dict(r) for r in rows]


def deadline_met(ticket: Mapping[str, Any], deadline: Deadline) -> bool:
    return ticket.get(MET_COLUMN[deadline]) is not None


def deadline_due(ticket: Mapping[str, Any], deadline: Deadline) -> datetime | None:
    return ticket.get(DUE_COLUMN[deadline])


async def call_has_ticket_of(conn: asyncpg.Connection, linkedid: str, actor: str, account_id: int | None) -> bool:
    """Whether a ticket of the call was opened by ``actor`` or is assigned to the account."""
    return await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM tickets WHERE linkedid = $1
                          AND (opened_by = $2 OR assignee_account_id = $3))""", linkedid, actor, account_id)


# ------------------------------------------------------------------ knowledge-base gaps

async def open_gap_tickets(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Tickets marked 知识库缺失 whose answer is not in yet, the soonest due
    first, each with the questions its call left unplaced."""
    rows = await conn.fetch(
        """SELECT t.*, COALESCE((SELECT array_agg(u.text ORDER BY u.id) FROM unplaced_questions u
                                 WHERE u.linkedid = t.linkedid OR u.id = t.unplaced_question_id), '{}') AS questions
           FROM tickets t WHERE t.knowledge_gap AND t.knowledge_done_at IS NULL
           ORDER BY t.knowledge_due, t.id""")
    return [dict(r) for r in rows]


# An open gap ticket t that covers the unplaced question u.
COVERS = """t.knowledge_gap AND t.knowledge_done_at IS NULL
            AND (t.unplaced_question_id = u.id OR (u.linkedid IS NOT NULL AND t.linkedid = u.linkedid))"""


async def unticketed_questions(conn: asyncpg.Connection, limit: int) -> list[dict[str, Any]]:
    """Open unplaced questions no open gap ticket covers (the call was answered
    by a person, or the question came from a tool), oldest first."""
    rows = await conn.fetch(
        f"""SELECT u.id, u.text, u.linkedid, u.status, u.created_at, u.transcript_confidence
            FROM unplaced_questions u
            WHERE u.status IN ('new', 'in_progress') AND NOT EXISTS (SELECT 1 FROM tickets t WHERE {COVERS})
            ORDER BY u.created_at, u.id LIMIT $1""", limit)
    return [dict(r) for r in rows]


async def gap_ticket_of_question(conn: asyncpg.Connection, question_id: int) -> int | None:
    """The open gap ticket that covers this unplaced question, if any."""
    return await conn.fetchval(
        f"SELECT t.id FROM unplaced_questions u JOIN tickets t ON {COVERS} WHERE u.id = $1 ORDER BY t.id LIMIT 1",
        question_id)

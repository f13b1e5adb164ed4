"""The report's SQL, all of it: every figure is counted in PostgreSQL over the
call records (``call_outcomes``), the voice menu's timeline (``call_events``),
the unplaced questions and the tickets, for a period (``since`` inclusive,
``until`` exclusive) and optionally one department. Each function takes a
connection and returns plain counts; :mod:`reports.figures` turns them into rates.

What the words mean here:

* a call is in the period when it started in it; its department is the one the
  call records give it (the queue it was sent to);
* **offered**: the call reached a person's queue (queued, answered or abandoned
  there) and its wait is over: answered, abandoned, or the call ended;
* its **wait**: Asterisk's HoldTime when the queue reported one, else the time
  from joining the queue to being answered, abandoning or the end of the call;
* **self-served**: the voice menu played an answer and the call never reached
  a queue;
* a call **escalated**: it has a ticket.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from tickets.store import OVERDUE

CALLS = """
WITH c AS (
    SELECT o.*,
           (o.queued_at IS NOT NULL OR o.agent_answered_at IS NOT NULL OR o.abandoned_at IS NOT NULL) AS queued,
           COALESCE(o.hold_seconds::numeric,
                    extract(epoch FROM COALESCE(o.agent_answered_at, o.abandoned_at, o.ended_at, o.lost_at)
                                       - o.queued_at)) AS wait
    FROM call_outcomes o
    WHERE o.started_at >= $1 AND o.started_at < $2 AND ($3::text IS NULL OR o.department = $3)
), offered AS (
    SELECT * FROM c
    WHERE queued AND (agent_answered_at IS NOT NULL OR abandoned_at IS NOT NULL
                      OR ended_at IS NOT NULL OR lost_at IS NOT NULL)
)
SELECT (SELECT count(*) FROM c) AS calls,
       (SELECT count(*) FROM c WHERE outcome = 'in_progress' AND agent_answered_at IS NULL) AS in_progress,
       (SELECT count(*) FROM c WHERE outcome = 'ended_in_menu') AS ended_in_menu,
       (SELECT count(*) FROM c WHERE NOT queued AND EXISTS (
            SELECT 1 FROM call_events e WHERE e.linkedid = c.linkedid AND e.kind = 'voice.heard'
                                          AND e.detail->>'reaction' = 'played_answer')) AS self_served,
       (SELECT count(*) FROM c WHERE EXISTS (SELECT 1 FROM tickets t WHERE t.linkedid = c.linkedid)) AS escalated,
       count(*) AS offered,
       count(*) FILTER (WHERE agent_answered_at IS NOT NULL) AS answered,
       count(*) FILTER (WHERE agent_answered_at IS NULL AND abandoned_at IS NOT NULL) AS abandoned,
       count(*) FILTER (WHERE agent_answered_at IS NOT NULL AND wait <= $4) AS answered_within,
       count(wait) AS waits,
       round(avg(wait), 1)::float AS wait_mean,
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY wait)::numeric, 1)::float AS wait_p90,
       max(wait)::float AS wait_max,
       round(avg(wait) FILTER (WHERE agent_answered_at IS NOT NULL), 1)::float AS answer_wait_mean
FROM offered
"""


async def call_figures(conn: asyncpg.Connection, since: datetime, until: datetime, department: str | None,
                       service_level_seconds: int) -> dict[str, Any]:
    return dict(await conn.fetchrow(CALLS, since, until, department, service_level_seconds))


async def hot_topics(conn: asyncpg.Connection, since: datetime, until: datetime, department: str | None,
                     limit: int) -> list[dict[str, Any]]:
    """The knowledge items the voice menu matched callers' words to, by the
    number of calls that asked about each."""
    rows = await conn.fetch(
        """SELECT e.detail->>'item' AS item, k.question, count(DISTINCT e.linkedid) AS calls
           FROM call_events e JOIN calls c ON c.linkedid = e.linkedid
           LEFT JOIN knowledge_items k ON k.id = e.detail->>'item'
           WHERE e.kind = 'voice.heard' AND e.detail->>'item' IS NOT NULL
             AND c.started_at >= $1 AND c.started_at < $2 AND ($3::text IS NULL OR c.department = $3)
           GROUP BY 1, 2 ORDER BY calls DESC, item LIMIT $4""", since, until, department, limit)
    return [dict(r) for r in rows]


async def intents(conn: asyncpg.Connection, since: datetime, until: datetime, department: str | None,
                  limit: int) -> list[dict[str, Any]]:
    """The departments the menu (spoken or keypad) sent callers to, by calls."""
    rows = await conn.fetch(
        """SELECT e.detail->>'department' AS department, count(DISTINCT e.linkedid) AS calls,
                  count(DISTINCT e.linkedid) FILTER (WHERE e.detail->>'reason' = 'speech') AS by_speech
           FROM call_events e JOIN calls c ON c.linkedid = e.linkedid
           WHERE e.kind = 'menu.routed' AND e.detail->>'department' IS NOT NULL
             AND c.started_at >= $1 AND c.started_at < $2 AND ($3::text IS NULL OR c.department = $3)
           GROUP BY 1 ORDER BY calls DESC, department LIMIT $4""", since, until, department, limit)
    return [dict(r) for r in rows]


async def unanswered_questions(conn: asyncpg.Connection, since: datetime, until: datetime,
                               department: str | None, limit: int) -> dict[str, Any]:
    """Questions the voice menu could not place, kept in the period: how many
    of each status, and the oldest still open (the editors' backlog)."""
    period = """u.created_at >= $1 AND u.created_at < $2
                AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM calls c WHERE c.linkedid = u.linkedid
                                                                      AND c.department = $3))"""
    counts = await conn.fetch(
        f"SELECT u.status, count(*) AS n FROM unplaced_questions u WHERE {period} GROUP BY u.status",
        since, until, department)
    waiting = await conn.fetch(
        f"""SELECT u.id, u.text, u.linkedid, u.created_at FROM unplaced_questions u
            WHERE {period} AND u.status IN ('new', 'in_progress') ORDER BY u.created_at, u.id LIMIT $4""",
        since, until, department, limit)
    return {"by_status": {r["status"]: r["n"] for r in counts}, "open": [dict(r) for r in waiting]}


TICKETS = f"""
SELECT count(*) AS opened,
       count(*) FILTER (WHERE t.state = 'closed') AS closed,
       (SELECT count(*) FROM tickets t WHERE t.state = 'closed' AND t.closed_at >= $1 AND t.closed_at < $2
                                         AND ($3::text IS NULL OR t.department = $3)) AS closed_in_period,
       count(*) FILTER (WHERE {OVERDUE}) AS overdue,
       count(*) FILTER (WHERE t.dispatched_at IS NOT NULL) AS dispatched,
       count(*) FILTER (WHERE t.escalated_at IS NOT NULL) AS escalated,
       count(*) FILTER (WHERE t.verified_at <= t.verify_due) AS verified_in_time,
       count(*) FILTER (WHERE t.verified_at IS NOT NULL OR t.verify_due < now()) AS verify_due_or_met,
       count(*) FILTER (WHERE t.answered_at <= t.answer_due) AS answered_in_time,
       count(*) FILTER (WHERE t.answered_at IS NOT NULL OR t.answer_due < now()) AS answer_due_or_met,
       count(*) FILTER (WHERE t.knowledge_gap) AS knowledge_gaps,
       count(*) FILTER (WHERE t.knowledge_done_at <= t.knowledge_due) AS knowledge_in_time,
       count(*) FILTER (WHERE t.knowledge_done_at IS NOT NULL OR t.knowledge_due < now()) AS knowledge_due_or_met
FROM tickets t
WHERE ($1::timestamptz IS NULL OR t.opened_at >= $1) AND ($2::timestamptz IS NULL OR t.opened_at < $2)
  AND ($3::text IS NULL OR t.department = $3)
"""


async def ticket_figures(conn: asyncpg.Connection, since: datetime | None, until: datetime | None,
                         department: str | None = None) -> dict[str, Any]:
    """The tickets opened in the period (and those closed in it): what became
    of them, their deadlines met, and where they came from."""
    row = dict(await conn.fetchrow(TICKETS, since, until, department))
    sources = await conn.fetch(
        """SELECT source, count(*) AS n FROM tickets t
           WHERE ($1::timestamptz IS NULL OR t.opened_at >= $1) AND ($2::timestamptz IS NULL OR t.opened_at < $2)
             AND ($3::text IS NULL OR t.department = $3) GROUP BY source""", since, until, department)
    return {**row, "by_source": {r["source"]: r["n"] for r in sources}}


async def satisfaction(conn: asyncpg.Connection, since: datetime, until: datetime,
                       department: str | None) -> dict[str, int]:
    """The callers' survey answers about the period's calls, by answer: the last
    answer about each call (``call_surveys``), whether given after the call or
    in a 回访 call about its ticket (that survey's row names the ticket, whose
    call it is)."""
    rows = await conn.fetch(
        """SELECT rating, count(*) AS n FROM (
               SELECT DISTINCT ON (a.about) a.rating
               FROM (SELECT s.linkedid AS about, s.rating, s.finished_at, s.id FROM call_surveys s
                     WHERE s.kind = 'after_call' AND s.outcome = 'rated'
                     UNION ALL
                     SELECT t.linkedid, s.rating, s.finished_at, s.id FROM call_surveys s
                     JOIN tickets t ON t.id = s.ticket_id
                     WHERE s.kind = 'follow_up' AND s.outcome = 'rated') AS a
               JOIN calls c ON c.linkedid = a.about
               WHERE c.started_at >= $1 AND c.started_at < $2 AND ($3::text IS NULL OR c.department = $3)
               ORDER BY a.about, a.finished_at DESC, a.id DESC) AS answers
           GROUP BY rating""", since, until, department)
    return {r["rating"]: r["n"] for r in rows}

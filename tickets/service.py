"""Tickets: opened from a call's disposition, the survey, an abandoned call, a
question the voice menu could not place, or by hand; moved through their
states; assigned; dispatched to 12345.

Every change is one transaction on the features' pool: the ticket's row, its
timeline row (who, when, why), its timers, and the live message for the
consoles, sent with ``NOTIFY`` inside the same transaction (so other
``hotline`` processes hear exactly what committed) and published in this
process once it has committed. The database's clock is the one clock.
"""

from __future__ import annotations

import json
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Callable, Mapping

import asyncpg

from hotline.hub import NOTIFY_CHANNEL, NOTIFY_LIMIT, TOPIC_TICKETS, EventHub
from hotline.logs import bound_call, get_logger
from hotline.settings import CALLBACK_NUMBER, Settings
from knowledge.store import fetch_item, set_unplaced_status
from tickets import store
from tickets.calendar import WorkingCalendar
from tickets.model import (
    AUTOMATIC_SOURCES,
    DISPOSITION_UNRESOLVED,
    DISPOSITION_UNSATISFIED,
    OPEN_STATES,
    SURVEY_RATINGS,
    SURVEY_UNSATISFIED,
    TICKET_DISPOSITIONS,
    UNVERIFIED,
    Deadline,
    Deadlines,
    TicketSource,
    TicketState,
    check_transition,
    timer_plan,
)

log = get_logger(__name__)

SUBJECT_MAX = 200
DESCRIPTION_MAX = 4000
DISPATCH_RATE_WINDOW = timedelta(days=30)
# The console's disposition codes (call_dispositions.outcome) → the ticket's reason.
CONSOLE_OUTCOMES = {"unresolved": DISPOSITION_UNRESOLVED, "unsatisfied": DISPOSITION_UNSATISFIED}
ACTOR_ABANDONED = "system:abandoned"
ACTOR_UNPLACED = "system:unplaced"
ACTOR_SURVEY = "system:survey"
ACTOR_12345 = "system:12345"
ACTOR_CALLBACK = "system:callback_offer"
# What the caller said in the queue, as the callback ticket's reason.
CALLBACK_REASONS = {"nobody": "无人值守时来电人请求回电", "waited": "排队等待较久，来电人请求回电"}


class TicketNotFound(LookupError):
    pass


class TicketInputError(ValueError):
    """What a caller of the service gave cannot make or change a ticket."""


@dataclass(frozen=True)
class NewTicket:
    source: TicketSource
    subject: str
    linkedid: str | None = None
    caller_number: str | None = None
    department: str | None = None
    description: str = ""
    reason: str | None = None
    callback: bool = False
    knowledge_gap: bool = False
    unplaced_question_id: int | None = None
    assignee_account_id: int | None = None
    survey_rating: str | None = None
    callback_number: str | None = None


@dataclass(frozen=True)
class Opened:
    ticket: dict[str, Any]
    created: bool


@dataclass
class Change:
    """One transaction changing tickets: what it will announce once committed."""

    conn: asyncpg.Connection
    at: datetime
    messages: list[dict[str, Any]] = field(default_factory=list)
    timers: bool = False
    dispatches: bool = False
    calls: bool = False


def summary(ticket: Mapping[str, Any]) -> dict[str, Any]:
    """A ticket as live messages carry it (no description: messages stay small)."""
    state = TicketState(ticket["state"])
    return {"id": ticket["id"], "number": ticket["number"], "state": state.value, "state_label": state.label,
            "source": ticket["source"], "linkedid": ticket["linkedid"], "caller_number": ticket["caller_number"],
            "department": ticket["department"], "assignee_account_id": ticket["assignee_account_id"],
            "subject": ticket["subject"][:SUBJECT_MAX], "verify_due": ticket["verify_due"],
            "answer_due": ticket["answer_due"], "knowledge_due": ticket["knowledge_due"],
            "callback": ticket["callback"], "callback_number": ticket.get("callback_number"),
            "knowledge_gap": ticket["knowledge_gap"]}


class TicketService:
    def __init__(self, settings: Settings, pool_of: Callable[[], asyncpg.Pool], hub: EventHub,
                 calendar: WorkingCalendar):
        self.settings = settings.tickets
        self.department_names = {d.code: d.name for d in settings.departments}
        self.queue_departments = {d.queue: d.code for d in settings.departments}
        self.deadlines = Deadlines(settings.tickets, calendar)
        self.pool_of = pool_of
        self._hub = hub
        # Called after a commit that added timers / queued a dispatch (the workers wake).
        self.on_timers: list[Callable[[], None]] = []
        self.on_dispatch: list[Callable[[], None]] = []
        self.on_calls: list[Callable[[], None]] = []      # a call to place was added

    # -- opening ---------------------------------------------------------------------

    async def open(self, new: NewTicket, actor: str) -> Opened:
        """Open a ticket (for an automatic source, the call's existing one is
        returned instead when it has one: ``created`` is then false)."""
        self._check(new)
        async with self.changing() as change:
            return await self._open(change, new, actor)

    async def open_from_disposition(self, linkedid: str, disposition: str, actor: str, *,
                                    account_id: int | None = None, note: str = "",
                                    department: str | None = None) -> Opened | None:
        """What the agents' console calls when an agent sets a call's
        disposition: 未解决 or 来电人不满意 open a ticket (assigned to that agent,
        2 h / 24 h clock), any other disposition none. Marking the same call
        again returns its open ticket."""
        if disposition not in TICKET_DISPOSITIONS:
            log.info("tickets.disposition_without_ticket", call_id=linkedid, disposition=disposition)
            return None
        subject = note.strip().splitlines()[0][:SUBJECT_MAX] if note.strip() else (
            "来电问题未解决" if disposition == DISPOSITION_UNRESOLVED else "来电人不满意")
        new = NewTicket(TicketSource.DISPOSITION, subject, linkedid=linkedid, department=department,
                        description=note.strip(), reason=disposition, assignee_account_id=account_id)
        self._check(new)
        async with self.changing() as change:
            existing = await store.latest_ticket_of_call(change.conn, linkedid, [TicketSource.DISPOSITION.value])
            if existing is not None and existing["state"] != TicketState.CLOSED.value:
                return Opened(existing, False)
            return await self._open(change, new, actor)

    async def open_for_disposition(self, disposition_id: int) -> Opened | None:
        """The console stored a disposition (``call_dispositions``) and published
        ``call.disposed``: 未解决 / 来电人不满意 open the call's ticket from the
        stored row (its note, its agent, the call's department)."""
        async with self.pool_of().acquire() as conn:
            row = await conn.fetchrow(
                """SELECT d.linkedid, d.outcome, d.note, d.account_id, a.login, c.department
                   FROM call_dispositions d JOIN accounts a ON a.id = d.account_id
                   LEFT JOIN calls c ON c.linkedid = d.linkedid
                   WHERE d.id = $1""", disposition_id)
        if row is None:
            log.warning("tickets.disposition_missing", disposition_id=disposition_id)
            return None
        label = CONSOLE_OUTCOMES.get(row["outcome"])
        if label is None:
            return None
        department = row["department"] if row["department"] in self.department_names else None
        with bound_call(row["linkedid"]):
            return await self.open_from_disposition(
                row["linkedid"], label, f"account:{row['account_id']}:{row['login']}",
                account_id=row["account_id"], note=row["note"], department=department)

    async def open_from_survey(self, linkedid: str, rating: str, actor: str = ACTOR_SURVEY, *,
                               ticket_id: int | None = None) -> Opened | None:
        """The caller's survey answer about a call. 不满意 opens a ticket, or
        reopens the call's answered or closed one (a new 2 h / 24 h round); any
        answer is recorded on the call's ticket when it has one (``ticket_id``:
        on that ticket, the 回访 call's). A satisfied answer in 回访 closes it."""
        if rating not in SURVEY_RATINGS:
            raise TicketInputError(f"survey rating must be one of {', '.join(SURVEY_RATINGS)}")
        async with self.changing() as change:
            return await self.survey_answered(change, linkedid, rating, actor, ticket_id=ticket_id)

    async def survey_answered(self, change: Change, linkedid: str, rating: str, actor: str, *,
                              ticket_id: int | None = None) -> Opened | None:
        """:meth:`open_from_survey` within a change the caller holds."""
        if ticket_id is not None:
            existing: dict[str, Any] | None = await self._lock(change, ticket_id)
        else:
            existing = await store.latest_ticket_of_call(change.conn, linkedid)
        if existing is None:
            if rating != SURVEY_UNSATISFIED:
                return None
            new = NewTicket(TicketSource.SURVEY, "满意度评价：不满意", linkedid=linkedid, reason=rating,
                            survey_rating=rating)
            return await self._open(change, new, actor)
        ticket = await store.update_ticket(change.conn, existing["id"], {"survey_rating": rating})
        await store.add_event(change.conn, ticket["id"], "survey", actor, reason=rating,
                              detail={"rating": rating, "linkedid": linkedid})
        state = TicketState(ticket["state"])
        if rating == SURVEY_UNSATISFIED and state in (TicketState.ANSWERED, TicketState.FOLLOW_UP,
                                                     TicketState.CLOSED):
            ticket = await self._move(change, ticket, TicketState.REOPENED, actor, "满意度评价：不满意")
        elif rating != SURVEY_UNSATISFIED and state is TicketState.FOLLOW_UP:
            ticket = await self._move(change, ticket, TicketState.CLOSED, actor, f"回访满意度：{rating}")
        return Opened(ticket, False)

    async def open_callback_request(self, linkedid: str, number: str, reason: str, *,
                                    department: str | None = None, caller_number: str | None = None,
                                    confirmed: str = "caller_id", actor: str = ACTOR_CALLBACK) -> Opened:
        """The caller asked in the queue to be called back on ``number`` (the
        callback offer): a callback ticket for the call (the one it has, if any,
        gets the callback and the number)."""
        if not CALLBACK_NUMBER.fullmatch(number):
            raise TicketInputError(f"{number!r} is not a number to call back (5 to 20 digits)")
        why = CALLBACK_REASONS.get(reason, reason)
        new = NewTicket(TicketSource.CALLBACK_REQUEST, "来电请求回电", linkedid=linkedid, department=department,
                        caller_number=caller_number, reason=why, callback=True, callback_number=number)
        self._check(new)
        with bound_call(linkedid):
            async with self.changing() as change:
                opened = await self._open_automatic(change, new, actor)
                detail = {"number": number, "confirmed": confirmed, "reason": reason}
                if opened.created:
                    await store.add_event(change.conn, opened.ticket["id"], "callback.requested", actor,
                                          reason=why, detail=detail)
                    return opened
                ticket = await store.update_ticket(change.conn, opened.ticket["id"],
                                                   {"callback": True, "callback_number": number})
                await store.add_event(change.conn, ticket["id"], "callback.requested", actor, reason=why,
                                      detail=detail)
                return Opened(ticket, False)

    async def open_for_abandoned(self, linkedid: str, hold_seconds: int | None, queue: str | None = None,
                                 actor: str = ACTOR_ABANDONED) -> Opened | None:
        """A caller who hung up in a queue after waiting longer than
        ``abandoned_callback_seconds`` gets a callback ticket (one per call)."""
        if hold_seconds is None or hold_seconds <= self.settings.abandoned_callback_seconds:
            return None
        with bound_call(linkedid):
            new = NewTicket(TicketSource.ABANDONED, "放弃来电回拨", linkedid=linkedid,
                            department=self.queue_departments.get(queue or ""),
                            reason=f"排队等待{hold_seconds}秒后挂机", callback=True)
            async with self.changing() as change:
                opened = await self._open_automatic(change, new, actor)
                if opened.created or opened.ticket["callback"]:
                    return opened
                ticket = await store.update_ticket(change.conn, opened.ticket["id"], {"callback": True})
                await store.add_event(change.conn, ticket["id"], "callback.flagged", actor, reason=new.reason)
                return Opened(ticket, False)

    async def open_for_unplaced(self, linkedid: str, actor: str = ACTOR_UNPLACED) -> Opened | None:
        """A call whose question the voice menu could not place and that no agent
        took: a ticket with a knowledge-base gap (5 working days) and a callback.
        A call that already has a callback ticket gets the gap added to it."""
        with bound_call(linkedid):
            async with self.changing() as change:
                call = await store.call_of(change.conn, linkedid)
                if call is None or call["agent_answered_at"] is not None:
                    return None
                questions = [q for q in await store.unplaced_of(change.conn, linkedid)
                             if q["status"] in ("new", "in_progress")]
                if not questions:
                    return None
                first = questions[0]
                new = NewTicket(TicketSource.UNPLACED, f"语音导航未识别：{first['text']}"[:SUBJECT_MAX],
                                linkedid=linkedid, description="\n".join(q["text"] for q in questions),
                                reason="语音导航未能识别来电人的问题，且无坐席接听", callback=True,
                                knowledge_gap=True, unplaced_question_id=first["id"])
                opened = await self._open_automatic(change, new, actor)
                if opened.created or opened.ticket["knowledge_gap"]:
                    return opened
                due = self.deadlines.due(Deadline.KNOWLEDGE, change.at)
                ticket = await store.update_ticket(change.conn, opened.ticket["id"], {
                    "knowledge_gap": True, "knowledge_due": due, "unplaced_question_id": first["id"]})
                await self._arm(change, ticket["id"], Deadline.KNOWLEDGE, due)
                await store.add_event(change.conn, ticket["id"], "knowledge_gap.flagged", actor,
                                      reason="语音导航未能识别来电人的问题",
                                      detail={"unplaced_question_id": first["id"], "knowledge_due": due})
                return Opened(ticket, False)

    # -- changing --------------------------------------------------------------------

    async def transition(self, ticket_id: int, to: TicketState, actor: str, reason: str,
                         detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Move a ticket (:class:`~tickets.model.IllegalTransition` when the
        table does not allow it). 已派发12345 goes through :meth:`dispatch`."""
        if to is TicketState.DISPATCHED:
            return await self.dispatch(ticket_id, actor, reason)
        if not reason.strip():
            raise TicketInputError("a reason is required")
        async with self.changing() as change:
            ticket = await self._lock(change, ticket_id)
            return await self._move(change, ticket, to, actor, reason.strip(), detail)

    async def assign(self, ticket_id: int, actor: str, *, department: str | None = None,
                     account_id: int | None = None, reason: str | None = None) -> dict[str, Any]:
        """Give a ticket to a department and/or an agent's account; the agent's
        console hears it (live message ``assigned`` with their ``account_id``)."""
        if department is None and account_id is None:
            raise TicketInputError("assign to a department, an agent's account, or both")
        if department is not None and department not in self.department_names:
            raise TicketInputError(f"unknown department {department!r}")
        async with self.changing() as change:
            ticket = await self._lock(change, ticket_id)
            changes: dict[str, Any] = {}
            if department is not None:
                changes["department"] = department
            if account_id is not None:
                changes["assignee_account_id"] = account_id
            before = {"department": ticket["department"], "account_id": ticket["assignee_account_id"]}
            ticket = await store.update_ticket(change.conn, ticket_id, changes)
            await store.add_event(change.conn, ticket_id, "assigned", actor, reason=reason,
                                  detail={"department": ticket["department"],
                                          "account_id": ticket["assignee_account_id"], "before": before})
            change.messages.append({"type": "assigned", "account_id": ticket["assignee_account_id"],
                                    "ticket": summary(ticket), "by": actor})
            log.info("tickets.assigned", ticket=ticket["number"], department=ticket["department"],
                     account_id=ticket["assignee_account_id"])
            return ticket

    async def resolve_knowledge_gap(self, ticket_id: int, knowledge_item_id: str, actor: str) -> dict[str, Any]:
        """The answer for a ticket's knowledge gap was added: which item (it
        must exist), when; the questions its call left open are answered by it too."""
        async with self.changing() as change:
            ticket = await self._lock(change, ticket_id)
            if not ticket["knowledge_gap"]:
                raise TicketInputError(f"ticket {ticket['number']} has no knowledge-base gap")
            if ticket["knowledge_done_at"] is not None:
                return ticket
            if await fetch_item(change.conn, knowledge_item_id) is None:
                raise TicketInputError(f"no knowledge item {knowledge_item_id!r}")
            ticket = await store.update_ticket(change.conn, ticket_id, {
                "knowledge_done_at": change.at, "knowledge_item_id": knowledge_item_id})
            await store.cancel_timers(change.conn, ticket_id, [Deadline.KNOWLEDGE])
            # Every question the call left open is answered by it (the editors saw them as one task).
            questions = [q["id"] for q in await store.unplaced_of(change.conn, ticket["linkedid"])
                         if q["status"] in ("new", "in_progress")] if ticket["linkedid"] else []
            if ticket["unplaced_question_id"] is not None:
                questions.append(ticket["unplaced_question_id"])
            for question in sorted(set(questions)):
                await set_unplaced_status(change.conn, question, "answered", knowledge_item_id=knowledge_item_id)
            await store.add_event(change.conn, ticket_id, "knowledge_gap.answered", actor,
                                  detail={"knowledge_item_id": knowledge_item_id, "unplaced_questions": questions})
            log.info("tickets.knowledge_gap_answered", ticket=ticket["number"], knowledge_item=knowledge_item_id)
            return ticket

    async def flag_knowledge_gap(self, ticket_id: int, actor: str, reason: str) -> dict[str, Any]:
        """Mark an open ticket 知识库缺失: the knowledge base had no answer for the
        caller's question, so an answer is due within ``knowledge_working_days``
        (an editor task, see :mod:`tickets.gaps`). Flagging it again changes nothing."""
        if not reason.strip():
            raise TicketInputError("a reason is required")
        async with self.changing() as change:
            ticket = await self._lock(change, ticket_id)
            if ticket["knowledge_gap"]:
                return ticket
            if TicketState(ticket["state"]) not in OPEN_STATES:
                raise TicketInputError(f"ticket {ticket['number']} is closed")
            due = self.deadlines.due(Deadline.KNOWLEDGE, change.at)
            ticket = await store.update_ticket(change.conn, ticket_id, {"knowledge_gap": True, "knowledge_due": due})
            await self._arm(change, ticket_id, Deadline.KNOWLEDGE, due)
            await store.add_event(change.conn, ticket_id, "knowledge_gap.flagged", actor, reason=reason.strip(),
                                  detail={"knowledge_due": due})
            log.info("tickets.knowledge_gap_flagged", ticket=ticket["number"], knowledge_due=due.isoformat())
            return ticket

    async def add_note(self, ticket_id: int, actor: str, text: str) -> dict[str, Any]:
        """A note on the ticket's timeline (a call made, what the caller said):
        kept like every other row, never edited."""
        text = text.strip()
        if not text:
            raise TicketInputError("a note needs text")
        if len(text) > DESCRIPTION_MAX:
            raise TicketInputError(f"a note is limited to {DESCRIPTION_MAX} characters")
        async with self.changing() as change:
            ticket = await self._lock(change, ticket_id)
            await store.add_event(change.conn, ticket_id, "note", actor, reason=text)
            return ticket

    # -- 12345 ---------------------------------------------------------------------

    async def dispatch(self, ticket_id: int, actor: str, reason: str) -> dict[str, Any]:
        """Hand the case to 12345: the move to 已派发12345 and the outbox row in
        one transaction; the outbox worker sends it. The share of tickets
        dispatched is reported (goal ``dispatch_goal``), never a block."""
        if not reason.strip():
            raise TicketInputError("a reason is required")
        async with self.changing() as change:
            ticket = await self._lock(change, ticket_id)
            check_transition(TicketState(ticket["state"]), TicketState.DISPATCHED)
            key = str(uuid.uuid4())
            payload = await self._dispatch_payload(change.conn, ticket, key, reason.strip())
            row = await store.add_dispatch(change.conn, ticket_id, key, payload, actor)
            ticket = await self._move(change, ticket, TicketState.DISPATCHED, actor, reason.strip(),
                                      {"dispatch_id": row["id"], "idempotency_key": key})
            change.dispatches = True
            rate = await self._dispatch_rate(change.conn)
            if rate["rate"] > self.settings.dispatch_goal:
                log.warning("tickets.dispatch_rate_above_goal", rate=round(rate["rate"], 4),
                            goal=self.settings.dispatch_goal, dispatched=rate["dispatched"], opened=rate["opened"])
            return ticket

    async def apply_dispatch_answer(self, answer: Mapping[str, Any], actor: str = ACTOR_12345, *,
                                    dispatch_id: int | None = None) -> dict[str, Any] | None:
        """12345's answer about a dispatched case, from the POST's response or
        sent to us later: ``{"status": "accepted" | "rejected" | "answered",
        "case_id", "reason" | "result", "idempotency_key"}``. Each answer acts
        once: a repeated one changes nothing (returns the dispatch with
        ``duplicate`` true). None: no such dispatch."""
        status = str(answer.get("status", ""))
        if status not in ("accepted", "rejected", "answered"):
            raise TicketInputError("status must be accepted, rejected or answered")
        key = answer.get("idempotency_key")
        case_id = answer.get("case_id")
        async with self.changing() as change:
            dispatch = await store.lock_dispatch(change.conn, dispatch_id=dispatch_id,
                                                 key=str(key) if key else None,
                                                 external_id=None if key or dispatch_id else (
                                                     str(case_id) if case_id else None))
            if dispatch is None:
                return None
            return await self._answer(change, dispatch, status, answer, actor)

    async def dispatch_failed(self, dispatch_id: int, error: str, actor: str = ACTOR_12345) -> None:
        """12345 refused the request itself (a 4xx no retry can fix): the case is
        back with us, in 处理中, and the reason is on the ticket."""
        async with self.changing() as change:
            dispatch = await store.lock_dispatch(change.conn, dispatch_id=dispatch_id)
            if dispatch is None or dispatch["status"] != "pending":
                return
            await store.update_dispatch(change.conn, dispatch_id, status="failed", last_error=error,
                                        leased_until=None)
            ticket = await self._lock(change, dispatch["ticket_id"])
            await store.add_event(change.conn, ticket["id"], "dispatch.failed", actor, reason=error,
                                  detail={"dispatch_id": dispatch_id})
            if ticket["state"] == TicketState.DISPATCHED.value:
                await self._move(change, ticket, TicketState.IN_PROGRESS, actor, f"12345平台拒收：{error}")
            log.error("tickets.dispatch_failed", ticket=ticket["number"], error=error)

    # -- reading ---------------------------------------------------------------------

    async def view(self, ticket_id: int, conn: asyncpg.Connection | None = None) -> dict[str, Any]:
        """A ticket with its timeline, its dispatches and its call: the record,
        the recordings and what the voice menu heard (read on ``conn`` if given)."""
        if conn is None:
            async with self.pool_of().acquire() as own:
                return await self.view(ticket_id, own)
        ticket = await store.ticket(conn, ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        out: dict[str, Any] = {"ticket": labelled(ticket), "timeline": await store.events(conn, ticket_id),
                               "dispatches": await store.dispatches_of(conn, ticket_id),
                               "calls": await store.calls_of(conn, ticket_id)}
        if ticket["linkedid"]:
            out["call"] = await store.call_of(conn, ticket["linkedid"])
            out["recordings"] = await store.recordings_of(conn, ticket["linkedid"])
            out["transcript"] = await store.transcript_of(conn, ticket["linkedid"])
            out["unplaced_questions"] = await store.unplaced_of(conn, ticket["linkedid"])
            out["surveys"] = await store.surveys_of(conn, ticket["linkedid"])
        return out

    async def dispatch_rate(self) -> dict[str, Any]:
        async with self.pool_of().acquire() as conn:
            return await self._dispatch_rate(conn)

    # -- internals -------------------------------------------------------------------

    @asynccontextmanager
    async def changing(self) -> AsyncIterator[Change]:
        async with self.pool_of().acquire() as conn:
            async with conn.transaction():
                change = Change(conn, await store.now(conn))
                yield change
                texts = []
                for message in change.messages:
                    text = json.dumps({"topic": TOPIC_TICKETS, "origin": self._hub.origin, **message},
                                      ensure_ascii=False, default=str)
                    if len(text.encode()) < NOTIFY_LIMIT:
                        texts.append(text)
                    else:
                        log.warning("tickets.live_too_large", type=message.get("type"), size=len(text.encode()))
                if texts:
                    await conn.execute("SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m",
                                       NOTIFY_CHANNEL, texts)
        for message in change.messages:
            self._hub.publish_live(TOPIC_TICKETS, json.loads(json.dumps(message, default=str)))
        for wake in ((self.on_timers if change.timers else []) + (self.on_dispatch if change.dispatches else [])
                     + (self.on_calls if change.calls else [])):
            wake()

    def _check(self, new: NewTicket) -> None:
        if not new.subject.strip():
            raise TicketInputError("a subject is required")
        if len(new.subject) > SUBJECT_MAX or len(new.description) > DESCRIPTION_MAX:
            raise TicketInputError(f"the subject is limited to {SUBJECT_MAX} characters, "
                                   f"the description to {DESCRIPTION_MAX}")
        if new.department is not None and new.department not in self.department_names:
            raise TicketInputError(f"unknown department {new.department!r}")

    async def _lock(self, change: Change, ticket_id: int) -> dict[str, Any]:
        ticket = await store.lock_ticket(change.conn, ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        return ticket

    async def _open(self, change: Change, new: NewTicket, actor: str) -> Opened:
        conn, at = change.conn, change.at
        if new.linkedid and (new.caller_number is None or new.department is None):
            call = await store.call_of(conn, new.linkedid)
            if call is not None:
                new = replace(new, caller_number=new.caller_number or call["caller_number"],
                              department=new.department or call["department"])
        values = {
            "source": new.source.value, "state": TicketState.TO_VERIFY.value, "linkedid": new.linkedid,
            "caller_number": new.caller_number, "department": new.department,
            "assignee_account_id": new.assignee_account_id, "subject": new.subject.strip(),
            "description": new.description, "reason": new.reason, "callback": new.callback,
            "knowledge_gap": new.knowledge_gap, "unplaced_question_id": new.unplaced_question_id,
            "survey_rating": new.survey_rating, "opened_by": actor, "opened_at": at,
            "callback_number": new.callback_number,
            "verify_due": self.deadlines.due(Deadline.VERIFY, at),
            "answer_due": self.deadlines.due(Deadline.ANSWER, at),
            "knowledge_due": self.deadlines.due(Deadline.KNOWLEDGE, at) if new.knowledge_gap else None,
        }
        if new.source in AUTOMATIC_SOURCES and new.linkedid:
            ticket = await store.insert_automatic_ticket(conn, values)
            if ticket is None:   # another process or trigger was first
                existing = await store.lock_automatic_ticket(conn, new.linkedid)
                assert existing is not None
                return Opened(existing, False)
        else:
            ticket = await store.insert_ticket(conn, values)
        for deadline in (Deadline.VERIFY, Deadline.ANSWER, Deadline.KNOWLEDGE):
            due = ticket[f"{deadline.value}_due"]
            if due is not None:
                await self._arm(change, ticket["id"], deadline, due)
        await store.add_event(conn, ticket["id"], "opened", actor, reason=new.reason, to_state=ticket["state"],
                              detail={"source": new.source.value, "verify_due": ticket["verify_due"],
                                      "answer_due": ticket["answer_due"], "knowledge_due": ticket["knowledge_due"]})
        change.messages.append({"type": "opened", "account_id": ticket["assignee_account_id"],
                                "ticket": summary(ticket), "by": actor})
        log.info("tickets.opened", ticket=ticket["number"], source=new.source.value, call_id=new.linkedid,
                 reason=new.reason)
        return Opened(ticket, True)

    async def _open_automatic(self, change: Change, new: NewTicket, actor: str) -> Opened:
        """The call's automatic ticket, locked: the one it has, or ``new``."""
        assert new.linkedid is not None
        existing = await store.lock_automatic_ticket(change.conn, new.linkedid)
        if existing is not None:
            return Opened(existing, False)
        return await self._open(change, new, actor)

    async def _arm(self, change: Change, ticket_id: int, deadline: Deadline, due: datetime) -> None:
        await store.add_timers(change.conn, ticket_id, timer_plan(self.deadlines, deadline, due, change.at))
        change.timers = True

    async def _move(self, change: Change, ticket: Mapping[str, Any], to: TicketState, actor: str, reason: str,
                    detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
        current = TicketState(ticket["state"])
        check_transition(current, to)
        at = change.at
        changes: dict[str, Any] = {"state": to.value}
        stop: set[Deadline] = set()
        start: dict[Deadline, datetime] = {}
        if current in UNVERIFIED and to is TicketState.IN_PROGRESS:
            changes["verified_at"] = at
            stop.add(Deadline.VERIFY)
        if to is TicketState.ANSWERED:
            changes["answered_at"] = at
            if ticket["verified_at"] is None:
                changes["verified_at"] = at     # answering the caller is contacting them
            stop |= {Deadline.VERIFY, Deadline.ANSWER}
        if to is TicketState.CLOSED:
            changes["closed_at"] = at
            stop |= {Deadline.VERIFY, Deadline.ANSWER}
            await store.cancel_calls(change.conn, ticket["id"])
        if to is TicketState.DISPATCHED:
            changes["dispatched_at"] = at
            stop |= {Deadline.VERIFY, Deadline.ANSWER}   # 12345 answers the case now
        if current is TicketState.DISPATCHED and to is TicketState.IN_PROGRESS and ticket["answered_at"] is None:
            start[Deadline.ANSWER] = ticket["answer_due"]   # handed back: our answer clock again
        if to is TicketState.REOPENED:
            verify, answer = self.deadlines.due(Deadline.VERIFY, at), self.deadlines.due(Deadline.ANSWER, at)
            changes.update(verify_due=verify, answer_due=answer, verified_at=None, answered_at=None,
                           closed_at=None, reopened_count=ticket["reopened_count"] + 1)
            stop |= {Deadline.VERIFY, Deadline.ANSWER}
            start.update({Deadline.VERIFY: verify, Deadline.ANSWER: answer})
        updated = await store.update_ticket(change.conn, ticket["id"], changes)
        if stop:
            await store.cancel_timers(change.conn, ticket["id"], stop)
        for deadline, due in start.items():
            await self._arm(change, ticket["id"], deadline, due)
        event_detail = dict(detail or {})
        if to is TicketState.REOPENED:
            event_detail.update(previous={"verify_due": ticket["verify_due"], "verified_at": ticket["verified_at"],
                                          "answer_due": ticket["answer_due"], "answered_at": ticket["answered_at"]},
                                verify_due=updated["verify_due"], answer_due=updated["answer_due"])
        await store.add_event(change.conn, ticket["id"], "transition", actor, reason=reason,
                              from_state=current.value, to_state=to.value, detail=event_detail)
        change.messages.append({"type": "transition", "account_id": updated["assignee_account_id"],
                                "from": current.value, "ticket": summary(updated), "by": actor, "reason": reason})
        log.info("tickets.moved", ticket=updated["number"], from_state=current.value, to_state=to.value,
                 actor=actor, call_id=updated["linkedid"])
        if to is TicketState.ANSWERED:
            await self._schedule_follow_up(change, updated)
        return updated

    move_in = _move   # a move within a change the caller holds (tickets.calls, tickets.survey)

    async def _schedule_follow_up(self, change: Change, ticket: Mapping[str, Any]) -> None:
        """回访: the survey is called ``follow_up_delay_minutes`` after the answer."""
        delay = self.settings.follow_up_delay_minutes
        number = ticket.get("callback_number") or ticket.get("caller_number") or ""
        if delay <= 0:
            return
        if not CALLBACK_NUMBER.fullmatch(number):
            await store.add_event(change.conn, ticket["id"], "follow_up.no_number", ACTOR_SURVEY,
                                  reason="没有可回访的号码")
            return
        due = change.at + timedelta(minutes=delay)
        call = await store.add_call(change.conn, ticket["id"], "follow_up", number, None, None, 1, due, ACTOR_SURVEY)
        if call is not None:
            await store.add_event(change.conn, ticket["id"], "follow_up.scheduled", ACTOR_SURVEY,
                                  detail={"call_id": call["id"], "number": number, "due_at": due})
            change.calls = True

    async def _answer(self, change: Change, dispatch: Mapping[str, Any], status: str,
                      answer: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """One answer of 12345 applied once (see :meth:`apply_dispatch_answer`)."""
        done = {"accepted": ("accepted", "rejected", "answered"), "rejected": ("rejected", "answered", "failed"),
                "answered": ("answered", "rejected", "failed")}[status]
        if dispatch["status"] in done:
            log.info("tickets.dispatch_answer_repeated", dispatch=dispatch["id"], status=status,
                     stored=dispatch["status"])
            return {**dispatch, "duplicate": True}
        case_id = answer.get("case_id") or dispatch["external_id"]
        text = str(answer.get("result") or answer.get("reason") or "")
        changes: dict[str, Any] = {"status": status, "external_id": str(case_id) if case_id else None,
                                   "leased_until": None}
        if dispatch["delivered_at"] is None:
            changes["delivered_at"] = change.at
        if status != "accepted":
            changes.update(result=text, answered_at=change.at)
        await store.update_dispatch(change.conn, dispatch["id"], **changes)
        ticket = await self._lock(change, dispatch["ticket_id"])
        await store.add_event(change.conn, ticket["id"], f"dispatch.{status}", actor, reason=text or None,
                              detail={"dispatch_id": dispatch["id"], "case_id": case_id})
        if ticket["state"] == TicketState.DISPATCHED.value and status != "accepted":
            to = TicketState.ANSWERED if status == "answered" else TicketState.IN_PROGRESS
            why = f"12345答复：{text}" if status == "answered" else f"12345退回：{text}"
            await self._move(change, ticket, to, actor, why, {"dispatch_id": dispatch["id"], "case_id": case_id})
        log.info("tickets.dispatch_answered", ticket=ticket["number"], status=status, case_id=case_id)
        return {**dispatch, **changes, "duplicate": False}

    async def _dispatch_payload(self, conn: asyncpg.Connection, ticket: Mapping[str, Any], key: str,
                                reason: str) -> dict[str, Any]:
        """The case as 12345 receives it: fixed when queued, so a retry sends
        the very same body."""
        call, heard, files = None, [], []
        if ticket["linkedid"]:
            call = await store.call_of(conn, ticket["linkedid"])
            heard = [text for turn in await store.transcript_of(conn, ticket["linkedid"])
                     for text in turn["transcripts"]]
            files = [r["asterisk_path"] for r in await store.recordings_of(conn, ticket["linkedid"])]
        return {
            "idempotency_key": key, "ticket_number": ticket["number"], "opened_at": ticket["opened_at"],
            "source": TicketSource(ticket["source"]).label, "department": ticket["department"],
            "department_name": self.department_names.get(ticket["department"] or ""),
            "caller_number": ticket["caller_number"], "subject": ticket["subject"],
            "description": ticket["description"], "reason": reason,
            "call": None if call is None else {"linkedid": call["linkedid"], "started_at": call["started_at"],
                                               "recordings": files},
            "transcript": heard,
        }

    async def _dispatch_rate(self, conn: asyncpg.Connection) -> dict[str, Any]:
        row = await conn.fetchrow(
            """SELECT count(*) AS opened, count(*) FILTER (WHERE dispatched_at IS NOT NULL) AS dispatched
               FROM tickets WHERE opened_at >= now() - $1::interval""", DISPATCH_RATE_WINDOW)
        opened, dispatched = row["opened"], row["dispatched"]
        return {"opened": opened, "dispatched": dispatched, "rate": dispatched / opened if opened else 0.0,
                "goal": self.settings.dispatch_goal, "window_days": DISPATCH_RATE_WINDOW.days}


def labelled(ticket: Mapping[str, Any]) -> dict[str, Any]:
    """A ticket row with the Chinese names of its state and source."""
    return {**ticket, "state_label": TicketState(ticket["state"]).label,
            "source_label": TicketSource(ticket["source"]).label,
            "open": TicketState(ticket["state"]) in OPEN_STATES}

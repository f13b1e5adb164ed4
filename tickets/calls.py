"""Calls the hotline places about a ticket: the callback (the caller, then the
assigned agent's phone or the department's queue) and the 回访 survey call.

Each attempt is a row of ``ticket_calls`` (migration 016), worked like the
deadlines' timers: :class:`~tickets.call_worker.CallWorker` claims due rows
(``FOR UPDATE SKIP LOCKED``), leases them and sends AMI ``Originate``; the
``OriginateResponse`` settles the row here. Anything but "answered" adds the
next attempt ``callback_spacing_minutes`` later while ``callback_attempts``
last; every result is a row of the ticket's timeline. A failed Originate (no
AMI connection, Asterisk's error, no answer in time, a process that died with
the call out) is an attempt that failed: the ticket is never touched otherwise.

What ``Reason`` means (``OriginateResponse``, main/manager.c ``fast_originate``;
the value is the last control frame ``__ast_request_and_dial`` in main/channel.c
saw, or 0 when the channel could not be made): 4 answered, 5 busy, 3 still
ringing when ``Timeout`` ran out (no answer), 8 congestion, 1 hung up before
answering (declined), 0 failed. Only a ``Success`` carrying 4 is captured
(``actions.jsonl``, an Originate to an application); the others are built from
that source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from hotline.logs import bound_call, get_logger
from hotline.settings import CALLBACK_NUMBER, Settings
from tickets import store
from tickets.model import UNVERIFIED, TicketState
from tickets.service import Change, TicketInputError, TicketService

log = get_logger(__name__)

CALLBACK = "callback"
FOLLOW_UP = "follow_up"
PURPOSE_LABELS = {CALLBACK: "回电", FOLLOW_UP: "回访"}
# The dialplan contexts an answered call goes to (config/asterisk/extensions.conf).
CONTEXTS = {CALLBACK: "hotline-callback-out", FOLLOW_UP: "hotline-follow-up"}

ANSWERED = "answered"
REASONS = {4: ANSWERED, 5: "busy", 3: "no_answer", 8: "congestion", 1: "hung_up", 0: "failed"}
RESULT_LABELS = {
    ANSWERED: "已接通", "busy": "忙线", "no_answer": "无人接听", "congestion": "线路拥塞", "hung_up": "对方拒接",
    "failed": "呼叫失败", "not_sent": "呼叫未发出", "lost": "结果未知（呼叫发出后服务中断）",
}
ACTOR = "system:calls"


def call_result(response: str | None, reason: int | None) -> str:
    """What became of the attempt, from OriginateResponse's Response and Reason."""
    if (response or "").lower() == "success":
        return ANSWERED
    if reason is None or reason == 4:       # answered, but the dialplan could not start
        return "failed"
    return REASONS.get(reason, "failed")


def reason_code(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Placed:
    """A call row as :func:`originate_action` needs it."""

    action_id: str
    purpose: str
    ticket_id: int
    number: str
    extension: str | None
    queue: str | None


def originate_action(settings: Settings, call: Placed) -> dict[str, Any]:
    """The AMI Originate for one attempt: the caller through the carrier
    (``[tickets] callback_dial``); once answered, the call runs the dialplan
    context of its purpose, which records it like any other call."""
    if not CALLBACK_NUMBER.fullmatch(call.number):
        raise TicketInputError(f"{call.number!r} is not a number to call (5 to 20 digits)")
    variables = [f"HOTLINE_TICKET={call.ticket_id}", f"HOTLINE_CALL_NUMBER={call.number}"]
    if call.purpose == CALLBACK:
        variables += [f"HOTLINE_AGENT={call.extension or ''}", f"HOTLINE_QUEUE={call.queue or settings.fallback_queue}"]
    return {
        "Action": "Originate", "ActionID": call.action_id,
        "Channel": settings.tickets.callback_dial.format(number=call.number),
        "Context": CONTEXTS[call.purpose], "Exten": "s", "Priority": "1",
        "Timeout": str(int(settings.tickets.callback_ring_seconds * 1000)),
        "CallerID": f'"{settings.service.name}" <{settings.service.public_number}>',
        "Async": "true", "Variable": variables,
    }


class TicketCalls:
    """Scheduling and settling the calls (SQL in tickets/store.py)."""

    def __init__(self, service: TicketService, settings: Settings):
        self._service = service
        self._settings = settings
        self.queues = {d.code: d.queue for d in settings.departments}

    @property
    def spacing(self) -> timedelta:
        return timedelta(minutes=self._settings.tickets.callback_spacing_minutes)

    async def schedule_callback(self, ticket_id: int, actor: str, *, number: str | None = None,
                                extension: str | None = None) -> dict[str, Any]:
        """Call the caller back now: the number they confirmed (or the caller
        ID), then ``extension`` (default: the assigned agent's phone) or the
        department's queue. A callback already waiting or ringing is returned."""
        if extension is not None and not (extension.isdigit() and
                                          self._settings.department_of_extension(extension)):
            raise TicketInputError(f"{extension!r} is not one of the agents' extensions")
        async with self._service.changing() as change:
            ticket = await store.lock_ticket(change.conn, ticket_id)
            if ticket is None:
                raise TicketInputError(f"no ticket {ticket_id}")
            waiting = await store.open_call(change.conn, ticket_id, CALLBACK)
            if waiting is not None:
                return waiting
            number = number or ticket["callback_number"] or ticket["caller_number"] or ""
            if not CALLBACK_NUMBER.fullmatch(number):
                raise TicketInputError("the ticket has no number to call back (5 to 20 digits)")
            if extension is None and ticket["assignee_account_id"] is not None:
                extension = await store.agent_extension(change.conn, ticket["assignee_account_id"])
            queue = self.queues.get(ticket["department"] or "", self._settings.fallback_queue)
            call = await store.add_call(change.conn, ticket_id, CALLBACK, number, extension, queue, 1, change.at,
                                        actor)
            assert call is not None
            await store.add_event(change.conn, ticket_id, "callback.scheduled", actor,
                                  detail={"call_id": call["id"], "number": number, "extension": extension,
                                          "queue": queue, "attempts": self._settings.tickets.callback_attempts})
            change.calls = True
            log.info("tickets.callback_scheduled", ticket=ticket["number"], call_id=ticket["linkedid"])
            return call

    async def settle(self, action_id: str, response: str | None, reason: int | None,
                     detail: Mapping[str, Any], result: str | None = None) -> dict[str, Any] | None:
        """An attempt is over: Asterisk's OriginateResponse (``response``,
        ``reason``), or ``result`` ``not_sent`` / ``lost`` when none will come.
        Settles each attempt once (a repeat finds it settled: None)."""
        async with self._service.changing() as change:
            call = await store.lock_ringing_call(change.conn, action_id)
            if call is None:
                return None
            outcome = result or call_result(response, reason)
            await store.settle_call(change.conn, call["id"], state="answered" if outcome == ANSWERED else "failed",
                                    result=outcome, response=response, reason_code=reason, detail=detail)
            ticket = await store.lock_ticket(change.conn, call["ticket_id"])
            assert ticket is not None
            with bound_call(ticket["linkedid"]):
                await self._after(change, call, ticket, outcome, reason, detail)
            return {**call, "result": outcome}

    async def _after(self, change: Change, call: Mapping[str, Any], ticket: Mapping[str, Any], outcome: str,
                     reason: int | None, detail: Mapping[str, Any]) -> None:
        purpose, attempt = call["purpose"], call["attempt"]
        label = f"{PURPOSE_LABELS[purpose]}{RESULT_LABELS.get(outcome, outcome)}（第{attempt}次）"
        event = {"call_id": call["id"], "attempt": attempt, "number": call["number"], "result": outcome,
                 "reason_code": reason, **detail}
        await store.add_event(change.conn, ticket["id"], f"{purpose}.{outcome}", ACTOR, reason=label, detail=event)
        log_call = log.info if outcome == ANSWERED else log.warning
        log_call(f"tickets.{purpose}_{outcome}", ticket=ticket["number"], attempt=attempt, reason_code=reason)
        state = TicketState(ticket["state"])
        if outcome == ANSWERED:
            if purpose == CALLBACK and state in UNVERIFIED:
                await self._service.move_in(change, ticket, TicketState.IN_PROGRESS, ACTOR, "回电已接通")
            elif purpose == FOLLOW_UP and state is TicketState.ANSWERED:
                await self._service.move_in(change, ticket, TicketState.FOLLOW_UP, ACTOR, "回访电话已接通")
            return
        if state is TicketState.CLOSED:
            return
        if attempt >= self._settings.tickets.callback_attempts:
            await store.add_event(change.conn, ticket["id"], f"{purpose}.gave_up", ACTOR,
                                  reason=f"{PURPOSE_LABELS[purpose]}{attempt}次均未接通",
                                  detail={"attempts": attempt})
            change.messages.append({"type": f"{purpose}_failed", "audience": "assignee",
                                    "account_id": ticket["assignee_account_id"],
                                    "ticket": {"id": ticket["id"], "number": ticket["number"]}})
            return
        due = change.at + self.spacing
        following = await store.add_call(change.conn, ticket["id"], purpose, call["number"], call["extension"],
                                         call["queue"], attempt + 1, due, ACTOR)
        if following is not None:
            await store.add_event(change.conn, ticket["id"], f"{purpose}.retry_scheduled", ACTOR,
                                  detail={"call_id": following["id"], "attempt": attempt + 1, "due_at": due})
            change.calls = True

    async def claim(self, limit: int, lease_seconds: float, worker: str) -> list[Placed]:
        async with self._service.pool_of().acquire() as conn:
            rows = await store.claim_calls(conn, limit, lease_seconds, worker)
        return [Placed(r["action_id"], r["purpose"], r["ticket_id"], r["number"], r["extension"], r["queue"])
                for r in rows]

    async def expire(self, limit: int) -> int:
        """Attempts whose lease ran out with no OriginateResponse: settled as lost."""
        async with self._service.pool_of().acquire() as conn:
            action_ids = await store.expired_calls(conn, limit)
        settled = 0
        for action_id in action_ids:
            done = await self.settle(action_id, None, None,
                                     {"error": "no OriginateResponse before the lease ran out"}, result="lost")
            settled += done is not None
        return settled

    async def seconds_to_next(self, poll: float) -> float:
        async with self._service.pool_of().acquire() as conn:
            due = await store.next_call_due(conn)
            now = await store.now(conn)
        if due is None:
            return poll
        return min(poll, max(0.0, (due - now).total_seconds()))

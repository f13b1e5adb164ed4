"""The deadlines' timers: reminders before a deadline, escalation when it passes.

Timers are rows (``ticket_timers``), so they survive restarts, and every
``hotline`` process runs a worker: each round claims the due rows with
``FOR UPDATE SKIP LOCKED`` and marks them fired in the same transaction, so a
timer fires exactly once whichever process gets it. A timer whose deadline was
met meanwhile is marked cancelled instead. A worker wakes at the next due time
(looked up each round, at most ``timer_poll`` apart, since other processes add
timers too) or at once when this process adds one (:mod:`tickets.rounds`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from hotline.logs import get_logger
from tickets import store
from tickets.model import MET_COLUMN, Deadline, TicketState
from tickets.rounds import RoundWorker
from tickets.service import TicketService, summary

log = get_logger(__name__)

ACTOR = "system:timers"
BATCH = 500


def _moot(timer: Mapping[str, Any]) -> bool:
    """The deadline was met, or the ticket no longer waits on it."""
    deadline = Deadline(timer["deadline"])
    if timer[MET_COLUMN[deadline]] is not None or timer["state"] == TicketState.CLOSED.value:
        return True
    return deadline is not Deadline.KNOWLEDGE and timer["state"] == TicketState.DISPATCHED.value


class TimerWorker(RoundWorker):
    task_name = "ticket-timers"
    failure_event = "tickets.timers_failed"

    def __init__(self, service: TicketService, poll: float, origin: str, batch: int = BATCH):
        super().__init__(poll, batch)
        self._service = service
        self._origin = origin
        self.fired = 0
        self.cancelled = 0

    async def run_once(self) -> int:
        """Fire (or cancel) the timers due now, one batch in one transaction;
        returns how many were claimed."""
        service = self._service
        async with service.changing() as change:
            due = await store.claim_due_timers(change.conn, self._batch)
            fired, cancelled = [], []
            for timer in due:
                if _moot(timer):
                    cancelled.append(timer["id"])
                    continue
                fired.append(timer["id"])
                await self._fire(change, timer)
            await store.mark_timers(change.conn, fired, cancelled, self._origin)
        self.fired += len(fired)
        self.cancelled += len(cancelled)
        return len(due)

    async def _fire(self, change: Any, timer: Mapping[str, Any]) -> None:
        deadline = Deadline(timer["deadline"])
        detail = {"deadline": deadline.value, "deadline_label": deadline.label, "deadline_at": timer["deadline_at"],
                  "timer_id": timer["id"]}
        if timer["action"] == "remind":
            await store.add_event(change.conn, timer["ticket_id"], "deadline.reminder", ACTOR,
                                  reason=f"{deadline.label}时限将到", detail=detail)
            kind = "reminder"
            log.info("tickets.reminder", ticket=timer["number"], deadline=deadline.value,
                     deadline_at=timer["deadline_at"].isoformat(), call_id=timer["linkedid"])
        else:
            await store.add_event(change.conn, timer["ticket_id"], "deadline.escalated", ACTOR,
                                  reason=f"{deadline.label}超时，已上报班长", detail=detail)
            if timer["escalated_at"] is None:
                await change.conn.execute("UPDATE tickets SET escalated_at = now() WHERE id = $1 "
                                          "AND escalated_at IS NULL", timer["ticket_id"])
            kind = "escalated"
            log.warning("tickets.escalated", ticket=timer["number"], deadline=deadline.value,
                        deadline_at=timer["deadline_at"].isoformat(), call_id=timer["linkedid"])
        ticket = await store.ticket(change.conn, timer["ticket_id"])
        assert ticket is not None
        # Reminders go to the assignee's console; escalations to the supervisors'.
        change.messages.append({"type": kind, "audience": "assignee" if kind == "reminder" else "supervisors",
                                "account_id": ticket["assignee_account_id"], "deadline": deadline.value,
                                "deadline_at": timer["deadline_at"], "ticket": summary(ticket)})

    async def seconds_to_next(self) -> float:
        async with self._service.pool_of().acquire() as conn:
            due: datetime | None = await store.next_timer_due(conn)
            now = await store.now(conn)
        if due is None:
            return self._poll
        return min(self._poll, max(0.0, (due - now).total_seconds()))

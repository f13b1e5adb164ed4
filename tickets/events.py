"""Tickets the calls open by themselves, from the call tracker's committed facts.

Subscribed to the event hub for this process's own committed batches (each
bridge acts on the calls it saw; the unique index on automatic tickets keeps a
call to one even if two processes try):

* ``queue.abandoned`` with ``hold_seconds`` over ``abandoned_callback_seconds``:
  a callback ticket;
* ``call.disposed`` (the agents' console) with ``for_ticket``: 未解决 or
  来电人不满意 open the call's ticket, assigned to that agent, from the stored
  disposition (``disposition_id``; the note is not in the timeline row);
* the caller's channel hung up (``channel.hangup`` of the caller's leg) or the
  call was found lost: if the voice menu kept an unplaced question for the
  call and no agent took it, a ticket with a knowledge-base gap.

Hub subscribers never wait: each check runs as a task (``core.settle()``
waits for them). What a crash between the commit and the ticket loses is found
again at the next start by :meth:`TicketTriggers.reconcile`, over the last
``reconcile_hours``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Awaitable

from hotline.facts import Committed
from hotline.logs import get_logger
from tickets.model import AUTOMATIC_SQL
from tickets.service import TicketService

log = get_logger(__name__)


class TicketTriggers:
    def __init__(self, service: TicketService):
        self._service = service
        self._tasks: set[asyncio.Task] = set()

    def committed(self, batch: Committed) -> None:
        for entry in batch.timeline:
            if entry.kind == "queue.abandoned":
                hold = entry.detail.get("hold_seconds")
                if isinstance(hold, int) and hold > self._service.settings.abandoned_callback_seconds:
                    self._spawn(self._service.open_for_abandoned(entry.linkedid, hold, entry.detail.get("queue")),
                                entry.linkedid, "abandoned")
            elif entry.kind == "call.disposed" and entry.detail.get("for_ticket"):
                disposition_id = entry.detail.get("disposition_id")
                if isinstance(disposition_id, int):
                    self._spawn(self._service.open_for_disposition(disposition_id), entry.linkedid, "disposition")
            elif (entry.kind == "channel.hangup" and entry.uniqueid == entry.linkedid) or entry.kind == "call.lost":
                self._spawn(self._service.open_for_unplaced(entry.linkedid), entry.linkedid, "unplaced")

    def _spawn(self, work: Awaitable[object], linkedid: str, trigger: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:   # the call is found again by the next start's reconciliation
                log.exception("tickets.trigger_failed", trigger=trigger, call_id=linkedid)

        task = asyncio.create_task(run(), name=f"ticket-{trigger}-{linkedid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def reconcile(self) -> int:
        """Open the tickets recent calls should have and do not (the process that
        saw them stopped before it could); returns how many were opened."""
        service = self._service
        window = timedelta(hours=service.settings.reconcile_hours)
        async with service.pool_of().acquire() as conn:
            abandoned = await conn.fetch(
                f"""SELECT c.linkedid, c.hold_seconds, c.queue FROM calls c
                   WHERE c.abandoned_at >= now() - $1::interval AND c.hold_seconds > $2
                         AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.linkedid = c.linkedid
                                         AND t.source IN {AUTOMATIC_SQL} AND t.callback)""",
                window, service.settings.abandoned_callback_seconds)
            unplaced = await conn.fetch(
                f"""SELECT DISTINCT c.linkedid FROM calls c JOIN unplaced_questions q ON q.linkedid = c.linkedid
                   WHERE c.started_at >= now() - $1::interval AND c.agent_answered_at IS NULL
                         AND (c.ended_at IS NOT NULL OR c.lost_at IS NOT NULL)
                         AND q.status IN ('new', 'in_progress')
                         AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.linkedid = c.linkedid
                                         AND t.source IN {AUTOMATIC_SQL} AND t.knowledge_gap)""",
                window)
            # The newest disposition of each call, where it asks for a ticket the call has not got.
            disposed = await conn.fetch(
                """SELECT d.id FROM (SELECT DISTINCT ON (linkedid) id, linkedid, outcome FROM call_dispositions
                                     WHERE updated_at >= now() - $1::interval
                                     ORDER BY linkedid, updated_at DESC) d
                   WHERE d.outcome IN ('unresolved', 'unsatisfied')
                         AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.linkedid = d.linkedid
                                         AND t.source = 'disposition')""", window)
        opened = 0
        for row in disposed:
            result = await service.open_for_disposition(row["id"])
            opened += bool(result and result.created)
        for row in abandoned:
            result = await service.open_for_abandoned(row["linkedid"], row["hold_seconds"], row["queue"])
            opened += bool(result and result.created)
        for row in unplaced:
            result = await service.open_for_unplaced(row["linkedid"])
            opened += bool(result and result.created)
        if opened:
            log.warning("tickets.reconciled", opened=opened, detail="calls whose ticket was not opened when they ended")
        return opened

"""Placing the tickets' calls over AMI: claim due attempts, send ``Originate``,
settle each from its ``OriginateResponse``.

Every process with an AMI connection runs one (a web-only process has none).
A due attempt is claimed and leased in the database before its Originate goes
out (``FOR UPDATE SKIP LOCKED``: two processes never place the same one); only
while logged in to Asterisk, so an AMI outage does not use up attempts. The
lease is the ring time plus ``[tickets] callback_response_timeout``: a process
that dies with a call out leaves it to whoever sees the lease run out (settled
as ``lost``, then retried like any failed attempt).

``Originate`` with ``Async: true`` is answered "Originate successfully queued"
at once; the outcome comes later as the event ``OriginateResponse`` with the
action's ActionID (captured in ``actions.jsonl``). Asterisk starts the call in
a thread before it sends that answer, so when the call fails at once the event
can arrive first: the AMI layer then hands the event over as the action's
answer, and it settles the attempt all the same.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Mapping

from hotline.logs import get_logger
from hotline.settings import Settings
from ivr.ami import AmiConnection, AmiError
from ivr.ami.message import Event, event_name, normalize
from tickets.calls import Placed, TicketCalls, originate_action, reason_code
from tickets.rounds import RoundWorker

log = get_logger(__name__)

BATCH = 20


def response_detail(event: Mapping[str, Any]) -> dict[str, Any]:
    """What the timeline keeps of an OriginateResponse (headers lower-cased)."""
    return {k: event[k] for k in ("channel", "uniqueid", "context", "exten") if event.get(k)}


class CallWorker(RoundWorker):
    task_name = "ticket-calls"
    failure_event = "tickets.calls_failed"

    def __init__(self, calls: TicketCalls, settings: Settings, ami: AmiConnection, origin: str,
                 batch: int = BATCH):
        super().__init__(settings.tickets.timer_poll, batch)
        self._calls = calls
        self._settings = settings
        self._ami = ami
        self._origin = origin
        self._lease = settings.tickets.callback_ring_seconds + settings.tickets.callback_response_timeout
        self._settling: set[asyncio.Task] = set()
        self.sent = 0

    async def close(self) -> None:
        await super().close()
        await self.wait_idle()

    async def wait_idle(self) -> None:
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)

    def responded(self, event: Event, _received_at: datetime) -> None:
        """AMI subscriber for ``OriginateResponse`` (never waits: a task settles it)."""
        action_id = str(event.get("actionid", ""))
        if action_id.startswith("ticket-call-"):
            self._spawn(self._settle_event(event))

    async def run_once(self) -> int:
        """Settle lapsed leases, then place the attempts due now; returns how many were sent."""
        await self._calls.expire(self._batch)
        if not self._ami.logged_in:
            return 0
        placed = await self._calls.claim(self._batch, self._lease, self._origin)
        for call in placed:
            await self._originate(call)
        return len(placed)

    async def _originate(self, call: Placed) -> None:
        action = originate_action(self._settings, call)
        log.info("tickets.originate", action_id=call.action_id, purpose=call.purpose, ticket_id=call.ticket_id)
        try:
            reply = await self._ami.request(action)
        except AmiError as exc:
            log.error("tickets.originate_failed", action_id=call.action_id, error=str(exc))
            await self._calls.settle(call.action_id, None, None, {"error": str(exc)}, result="not_sent")
            return
        self.sent += 1
        if not isinstance(reply, list) and event_name(normalize(reply)) == "originateresponse":
            await self._settle_event(normalize(reply))

    async def _settle_event(self, event: Event) -> None:
        await self._calls.settle(str(event.get("actionid")), str(event.get("response", "")) or None,
                                 reason_code(event.get("reason")), response_detail(event))

    def _spawn(self, work: Any) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:   # the row stays ringing until its lease runs out: settled then
                log.exception("tickets.originate_response_failed")

        task = asyncio.create_task(run(), name="ticket-call-settle")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def seconds_to_next(self) -> float:
        if not self._ami.logged_in:
            return self._poll
        return await self._calls.seconds_to_next(self._poll)

"""The call tracker's subscriptions: every AMI event becomes call facts and
timeline rows; after every login the tracker's view is rebuilt from what
Asterisk lists, and calls that ended while the bridge was away are closed."""

from __future__ import annotations

from datetime import datetime, timezone

from hotline.core import Core
from hotline.logs import get_logger
from ivr.ami import AmiConnection, AmiError
from ivr.ami.message import Event, list_items
from ivr.calls import store
from ivr.calls.tracker import CallTracker

log = get_logger(__name__)


class CallEvents:
    def __init__(self, core: Core):
        self.core = core
        self.tracker = CallTracker({d.queue: d.code for d in core.settings.departments})

    def subscribe(self) -> None:
        self.core.ami_events.subscribe("*", self.apply)
        # Log lines about an event with only a Uniqueid (Cdr) name the call it belongs to.
        self.core.ami_events.call_id_of = self.call_id_of
        self.core.on_login("calls.resync", self.resync)

    def call_id_of(self, event: Event) -> str | None:
        uniqueid = event.get("uniqueid")
        return event.get("linkedid") or (self.tracker.linkedid_of(str(uniqueid)) if uniqueid else None)

    def apply(self, event: Event, received_at: datetime) -> None:
        self.core.writer.submit(self.tracker.apply(event, received_at))

    async def resync(self, ami: AmiConnection, channels: list[Event]) -> None:
        now = datetime.now(timezone.utc)
        writer = self.core.writer
        writer.submit(self.tracker.resync(channels, now, session=ami.logins))
        writer.submit(self.tracker.queue_entries(await self._queue_entries(ami), now, session=ami.logins))
        await writer.flush()
        async with self.core.pool.acquire() as conn:
            still_open = await store.open_calls(conn)
        lost = self.tracker.close_lost_calls([dict(r) for r in still_open], now)
        if lost.calls:
            log.warning("calls.lost_while_disconnected", count=len(lost.calls))
        writer.submit(lost)
        log.info("calls.resynced", channels=len(channels), lost_calls=len(lost.calls))

    async def _queue_entries(self, ami: AmiConnection) -> list[Event]:
        """The callers waiting in queues now (QueueStatus's QueueEntry items)."""
        try:
            listing = await self.core.queue_status(ami)
        except AmiError as exc:
            log.error("calls.queue_status_failed", error=repr(exc),
                      detail="callers queued while the bridge was away keep no queue until their next event")
            return []
        return list_items(listing, "queueentry")

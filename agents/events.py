"""The agents' AMI subscriptions.

Queue member events keep ``queue_members`` current (a sink of the call
writer) and, with the call, device and contact events, drive the agents' desk
(:mod:`agents.service`). After every login one QueueStatus listing is the
truth for both: ``queue_members`` is replaced by it and the desk rebuilds its
agents and waiting callers from it (after a reconnect, or an Asterisk restart
that kept persistent members).
"""

from __future__ import annotations

from datetime import datetime, timezone

from agents import store
from agents.membership import MEMBER_EVENTS, member_state
from agents.service import STATE_SINK, AgentDesk
from hotline.core import Core
from hotline.facts import ChangeSet
from ivr.ami import AmiConnection
from ivr.ami.message import Event, event_name, list_items
from ivr.calls.tracker import event_time

SINK = "queue_members"
# What the desk follows besides the member events.
DESK_EVENTS = ("AgentCalled", "AgentConnect", "AgentRingNoAnswer", "AgentComplete", "Hangup",
               "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "DeviceStateChange",
               "ContactStatus")


class MembershipEvents:
    def __init__(self, core: Core, desk: AgentDesk):
        self.core = core
        self.desk = desk

    def subscribe(self) -> None:
        self.core.writer.add_sink(SINK, store.write_members)
        self.core.writer.add_sink(STATE_SINK, store.write_states)
        for name in MEMBER_EVENTS:
            self.core.ami_events.subscribe(name, self.member_changed)
        for name in DESK_EVENTS:
            self.core.ami_events.subscribe(name, self.desk_event)
        self.core.on_login("agents.queue_status", self.resync)

    def member_changed(self, event: Event, received_at: datetime) -> None:
        state = member_state(event, removed=event_name(event) == "queuememberremoved")
        self.core.writer.submit(ChangeSet(rows={SINK: [state]}))
        self.desk.apply(event, event_time(event, received_at))

    def desk_event(self, event: Event, received_at: datetime) -> None:
        self.desk.apply(event, event_time(event, received_at))

    async def resync(self, ami: AmiConnection, channels: list[Event]) -> None:
        listing = await self.core.queue_status(ami)
        now = datetime.now(timezone.utc)
        items = list_items(listing)
        queues = [str(m.get("queue")) for m in items if event_name(m) == "queueparams"]
        members = [member_state(m) for m in items if event_name(m) == "queuemember"]
        entries = [m for m in items if event_name(m) == "queueentry"]
        live = {str(c["uniqueid"]) for c in channels if c.get("uniqueid")}
        self.desk.rebuild(members, entries, live, now)
        # Member events already queued for the writer predate this listing.
        await self.core.writer.flush()
        async with self.core.pool.acquire() as conn:
            await store.replace_members(conn, members, queues)

"""Queue membership from Asterisk: QueueMember* events keep ``queue_members``
current; after every login QueueStatus replaces it (the truth after a
reconnect, or after an Asterisk restart that kept persistent members)."""

from __future__ import annotations

from datetime import datetime

from agents import store
from agents.membership import MEMBER_EVENTS, member_state
from hotline.core import Core
from hotline.facts import ChangeSet
from ivr.ami import AmiConnection
from ivr.ami.message import Event, event_name, list_items

SINK = "queue_members"


class MembershipEvents:
    def __init__(self, core: Core):
        self.core = core

    def subscribe(self) -> None:
        self.core.writer.add_sink(SINK, store.write_members)
        for name in MEMBER_EVENTS:
            self.core.ami_events.subscribe(name, self.member_changed)
        self.core.on_login("agents.queue_status", self.resync)

    def member_changed(self, event: Event, _received_at: datetime) -> None:
        state = member_state(event, removed=event_name(event) == "queuememberremoved")
        self.core.writer.submit(ChangeSet(rows={SINK: [state]}))

    async def resync(self, ami: AmiConnection, _channels: list[Event]) -> None:
        listing = await ami.request({"Action": "QueueStatus"}, as_list=None)
        items = list_items(listing)
        queues = [str(m.get("queue")) for m in items if event_name(m) == "queueparams"]
        members = [member_state(m) for m in items if event_name(m) == "queuemember"]
        # Member events already queued for the writer predate this listing.
        await self.core.writer.flush()
        async with self.core.pool.acquire() as conn:
            await store.replace_members(conn, members, queues)

"""The AMI bridge: Asterisk's events in, call records and menu sessions out.

Wires one :class:`AmiConnection` to the call tracker (events → facts and
timeline), the batched writer (→ PostgreSQL), the recording registrar and the
voice-menu sessions. On every (re)connect it rebuilds its view of live calls and
queues from CoreShowChannels and QueueStatus, closes calls that ended while it
was away, and returns callers stranded in the menu to the dialplan's safe path.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping

import asyncpg
from panoramisk.message import Message

from hotline.logs import bound_call, get_logger
from hotline.settings import Settings
from agents.membership import MEMBER_EVENTS, member_state
from agents import store as agents_store
from ivr.ami import AmiConnection
from ivr.ami.message import list_items, normalize
from ivr.calls import store
from hotline.facts import ChangeSet, TimelineEntry, dedupe_key
from ivr.calls.tracker import CallTracker
from ivr.calls.writer import CallWriter
from ivr.menu.agi_result import parse_agi_env
from ivr.menu.async_agi import AgiCommandError, AgiHangup, AsyncAgiChannel
from ivr.menu.session import IntentListener, MenuSession
from recordings.registration import RecordingRegistrar

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Bridge:
    def __init__(self, settings: Settings, pool: asyncpg.Pool,
                 listener: IntentListener | None = None):
        self.settings = settings
        self.pool = pool
        self.listener = listener
        self.tracker = CallTracker({d.queue: d.code for d in settings.departments})
        self.recordings = RecordingRegistrar(pool, settings.recordings)
        self.writer = CallWriter(pool, settings.calls, on_recordings=self.recordings.submit)
        self.writer.add_sink("queue_members", agents_store.write_members)
        self.ami = AmiConnection(settings.ami, on_login=self._resync)
        self.ami.register_event("*", self._on_event)
        self._agi: dict[str, AsyncAgiChannel] = {}   # channel name -> live AGI session
        self._menus: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.writer.start()
        self.ami.connect()

    async def stop(self) -> None:
        await self.ami.close()
        for task in list(self._menus):
            task.cancel()
        await asyncio.gather(*self._menus, return_exceptions=True)
        await self.writer.close()
        await self.recordings.wait_idle()

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until everything received so far is in PostgreSQL (tests, shutdown)."""
        await self.writer.flush(timeout)
        await self.recordings.wait_idle()

    # -- events ------------------------------------------------------------------------

    def _on_event(self, _manager: AmiConnection, message: Message) -> None:
        event = normalize(message)
        received_at = _now()
        linkedid = event.get("linkedid") or self.tracker.linkedid_of(str(event.get("uniqueid", "")))
        with bound_call(linkedid):
            try:
                self.writer.submit(self.tracker.apply(event, received_at))
                if event.get("event") in MEMBER_EVENTS:
                    self.writer.submit(ChangeSet(rows={"queue_members": [
                        member_state(event, removed=event.get("event") == "QueueMemberRemoved")]}))
                self._menu_event(event)
            except Exception:
                # One bad event must not stop the stream for every other call.
                log.exception("event could not be processed", event=event.get("event"))

    def _menu_event(self, event: Mapping[str, Any]) -> None:
        name = str(event.get("event", "")).lower()
        channel = str(event.get("channel", ""))
        if name == "asyncagistart":
            self._start_menu(event)
        elif name == "asyncagiexec":
            session = self._agi.get(channel)
            if session is not None:
                session.deliver(event)
        elif name in ("asyncagiend", "hangup"):
            session = self._agi.pop(channel, None)
            if session is not None:
                session.end(name)

    def _start_menu(self, event: Mapping[str, Any]) -> None:
        channel = str(event.get("channel", ""))
        uniqueid = str(event.get("uniqueid", ""))
        linkedid = str(event.get("linkedid") or uniqueid)
        if channel in self._agi:
            return  # the same AsyncAGIStart delivered twice
        try:
            env = parse_agi_env(str(event.get("env", "")))
        except ValueError as exc:
            log.error("malformed AGI environment; caller goes to the fallback queue", error=str(exc))
            env = {}
        agi = AsyncAgiChannel(self.ami, channel, uniqueid, linkedid, env)
        self._agi[channel] = agi
        record = self._recorder(linkedid, uniqueid)
        if not env:
            task = asyncio.create_task(self._break_to_fallback(agi, record, "malformed AGI environment"))
        else:
            session = MenuSession(agi, self.settings, record, self.listener)
            task = asyncio.create_task(self._run_menu(session, linkedid), name=f"menu-{uniqueid}")
        self._menus.add(task)
        task.add_done_callback(self._menus.discard)

    async def _run_menu(self, session: MenuSession, linkedid: str) -> None:
        with bound_call(linkedid):
            await session.run()

    def _recorder(self, linkedid: str, uniqueid: str):
        run = uuid.uuid4().hex
        counter = iter(range(1, 1_000_000))

        def record(kind: str, detail: Mapping[str, Any]) -> None:
            entry = TimelineEntry(linkedid=linkedid, uniqueid=uniqueid, occurred_at=_now(), kind=kind,
                                  detail=dict(detail), dedupe_key=dedupe_key("menu", run, next(counter)))
            self.writer.submit(ChangeSet(timeline=[entry]))

        return record

    async def _break_to_fallback(self, agi: AsyncAgiChannel, record, reason: str) -> None:
        with bound_call(agi.linkedid):
            record("menu.rescued", {"reason": reason})
            try:
                await agi.command("ASYNCAGI BREAK", timeout=5.0)
            except (AgiHangup, AgiCommandError, asyncio.TimeoutError) as exc:
                log.error("could not return the caller to the dialplan", error=repr(exc))

    # -- resync after every login --------------------------------------------------------

    async def _resync(self, ami: AmiConnection) -> None:
        now = _now()
        listing = await ami.request({"Action": "CoreShowChannels"}, as_list=None)
        items = list_items(listing, "coreshowchannel")
        self.writer.submit(self.tracker.resync(items, now, session=ami.logins))
        await self.writer.flush()
        async with self.pool.acquire() as conn:
            still_open = await store.open_calls(conn)
        lost = self.tracker.close_lost_calls([dict(r) for r in still_open], now)
        if lost.calls:
            log.warning("calls ended while the bridge was disconnected", count=len(lost.calls))
        self.writer.submit(lost)
        await self._resync_queues(ami)
        for item in items:
            waiting_in_menu = str(item.get("application", "")).upper() == "AGI" and \
                "agi:async" in str(item.get("applicationdata", ""))
            channel = str(item.get("channel", ""))
            if waiting_in_menu and channel not in self._agi:
                self._rescue(item)
        log.info("resynced with Asterisk", channels=len(items), lost_calls=len(lost.calls))

    async def _resync_queues(self, ami: AmiConnection) -> None:
        listing = await ami.request({"Action": "QueueStatus"}, as_list=None)
        messages = list_items(listing)
        queues = [str(m.get("queue")) for m in messages if str(m.get("event", "")).lower() == "queueparams"]
        members = [member_state(m) for m in messages if str(m.get("event", "")).lower() == "queuemember"]
        async with self.pool.acquire() as conn:
            await agents_store.replace_members(conn, members, queues)

    def _rescue(self, item: Mapping[str, Any]) -> None:
        """A caller waits in AGI(agi:async) with no menu behind it (the bridge
        restarted mid-menu): send them to the dialplan's fallback queue."""
        channel = str(item.get("channel"))
        uniqueid = str(item.get("uniqueid"))
        linkedid = str(item.get("linkedid") or uniqueid)
        agi = AsyncAgiChannel(self.ami, channel, uniqueid, linkedid, {})
        self._agi[channel] = agi
        task = asyncio.create_task(self._break_to_fallback(
            agi, self._recorder(linkedid, uniqueid), "menu session lost across a reconnect"))
        self._menus.add(task)
        task.add_done_callback(self._menus.discard)


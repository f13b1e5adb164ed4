"""The callers in the voice menu: one AsyncAGI session each.

``AsyncAGIStart`` starts a :class:`~ivr.menu.session.MenuSession` for the
caller's channel, or, when the dialplan named a script (``AGI(agi:async,survey)``:
``agi_arg_1``), the session another feature added for it with
:meth:`MenuSessions.add_script` (tickets: the survey, the callback offer);
``AsyncAGIExec`` results go to it; ``AsyncAGIEnd`` or
``Hangup`` ends it. ``HangupRequest``/``SoftHangupRequest`` and the
``AGISTATUS`` the session ended with are passed on too: they tell a caller
who hung up from a prompt Asterisk could not play
(:mod:`ivr.menu.prompt_failure`). After every AMI login, a caller Asterisk
shows in the menu (``AGI(agi:async)``, or an application the menu EXECs, see :func:`in_menu`) that
no session here owns (the bridge restarted mid-menu) is sent back to the
dialplan's fallback queue. Every menu step is a timeline
row, submitted to the call writer like the tracker's.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping

from hotline.core import Core
from hotline.facts import ChangeSet, TimelineEntry, dedupe_key
from hotline.logs import bound_call, get_logger
from ivr.ami import AmiConnection
from ivr.ami.message import Event, event_name
from ivr.menu.agi_result import parse_agi_env
from ivr.menu.async_agi import AgiCommandError, AgiHangup, AsyncAgiChannel
from ivr.menu.session import CallbackOffer, IntentListener, MenuSession

log = get_logger(__name__)

Record = Callable[[str, Mapping[str, Any]], None]
# A session run for ``AGI(agi:async,<name>,<args>...)``: the channel, its timeline
# writer, and the dialplan's further arguments (agi_arg_2, ...).
AgiScript = Callable[[AsyncAgiChannel, Record, list[str]], Awaitable[None]]


def _now() -> datetime:
    return datetime.now(timezone.utc)


# Applications the menu runs inside the caller's AGI session with EXEC. When one
# returns, Asterisk publishes no new channel snapshot, so CoreShowChannels keeps
# naming it while the caller already waits in AGI(agi:async) again (capture E6).
# Queue is not among them: a caller listed in Queue is waiting for a person.
MENU_EXEC_APPLICATIONS = frozenset({"AUDIOSOCKET"})


def _script_of(env: Mapping[str, str]) -> tuple[str, list[str]]:
    """The script the dialplan named (``agi_arg_1``) and its arguments."""
    args = []
    for number in range(1, 64):
        if f"agi_arg_{number}" not in env:
            break
        args.append(env[f"agi_arg_{number}"])
    return (args[0], args[1:]) if args else ("", [])


def in_menu(item: Event) -> bool:
    """A CoreShowChannel item of a caller whose AGI session waits for our menu."""
    application = str(item.get("application", "")).upper()
    if application == "AGI":
        return "agi:async" in str(item.get("applicationdata", ""))
    return application in MENU_EXEC_APPLICATIONS


class MenuSessions:
    def __init__(self, core: Core, listener: IntentListener | None = None):
        self.core = core
        self.listener = listener
        self._agi: dict[str, AsyncAgiChannel] = {}   # channel name -> live AGI session
        # Sessions that have ended while their menu still runs (it may be reading
        # why they ended): channel name -> session.
        self._closing: dict[str, AsyncAgiChannel] = {}
        self._tasks: set[asyncio.Task] = set()
        self._task_of: dict[str, asyncio.Task] = {}  # channel name -> the task driving its menu
        self._scripts: dict[str, AgiScript] = {}
        self.callback_offer: CallbackOffer | None = None

    def add_script(self, name: str, script: AgiScript) -> None:
        """Run ``script`` for callers the dialplan sends to ``AGI(agi:async,<name>,...)``."""
        self._scripts[name] = script

    def subscribe(self) -> None:
        events = self.core.ami_events
        events.subscribe("AsyncAGIStart", self.started)
        events.subscribe("AsyncAGIExec", self.executed)
        events.subscribe("AsyncAGIEnd", self.ended)
        events.subscribe("Hangup", self.hung_up)
        events.subscribe("HangupRequest", self.hangup_requested)
        events.subscribe("SoftHangupRequest", self.hangup_requested)
        events.subscribe("VarSet", self.variable_set)
        self.core.on_login("menu.rescue", self.rescue_orphans)
        self.core.on_shutdown("menu.hand_over", self.hand_over)

    @property
    def ami(self) -> AmiConnection:
        assert self.core.ami is not None, "the voice menu needs the AMI connection"
        return self.core.ami

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- events ------------------------------------------------------------------------

    def started(self, event: Event, _received_at: datetime) -> None:
        channel = str(event.get("channel", ""))
        uniqueid = str(event.get("uniqueid", ""))
        linkedid = str(event.get("linkedid") or uniqueid)
        if channel in self._agi:
            return  # the same AsyncAGIStart delivered twice
        try:
            env = parse_agi_env(str(event.get("env", "")))
        except ValueError as exc:
            log.error("menu.agi_env_malformed", error=str(exc), reaction="fallback_queue")
            env = {}
        agi = AsyncAgiChannel(self.ami, channel, uniqueid, linkedid, env)
        self._agi[channel] = agi
        record = self.recorder(linkedid, uniqueid)
        name, args = _script_of(env)
        if not env:
            self._run(self._break_to_fallback(agi, record, "malformed AGI environment"), agi)
        elif name and name not in self._scripts:
            log.error("menu.unknown_script", script=name, reaction="dialplan")
            self._run(self._break_to_fallback(agi, record, f"no session for AGI script {name!r}"), agi)
        elif name:
            self._run(self._scripts[name](agi, record, args), agi)
        else:
            self._run(MenuSession(agi, self.core.settings, record, self.listener, self.callback_offer).run(), agi)

    def executed(self, event: Event, _received_at: datetime) -> None:
        session = self._agi.get(str(event.get("channel", "")))
        if session is not None:
            session.deliver(event)

    def ended(self, event: Event, _received_at: datetime) -> None:
        channel = str(event.get("channel", ""))
        session = self._agi.pop(channel, None)
        if session is not None:
            session.end(event_name(event))
            if channel in self._task_of:
                self._closing[channel] = session

    def hung_up(self, event: Event, received_at: datetime) -> None:
        self.hangup_requested(event, received_at)
        self.ended(event, received_at)

    def hangup_requested(self, event: Event, _received_at: datetime) -> None:
        session = self._session_of(event)
        if session is not None:
            session.hangup_seen()

    def variable_set(self, event: Event, _received_at: datetime) -> None:
        if str(event.get("variable", "")).upper() != "AGISTATUS":
            return
        session = self._session_of(event)
        if session is not None:
            session.status_set(str(event.get("value", "")))

    def _session_of(self, event: Event) -> AsyncAgiChannel | None:
        channel = str(event.get("channel", ""))
        return self._agi.get(channel) or self._closing.get(channel)

    # -- after every login -------------------------------------------------------------

    async def rescue_orphans(self, _ami: AmiConnection, channels: list[Event]) -> None:
        for item in channels:
            channel = str(item.get("channel", ""))
            if in_menu(item) and channel not in self._agi:
                self._rescue(item)

    def _rescue(self, item: Mapping[str, Any]) -> None:
        """A caller waits in AGI(agi:async) with no menu behind it (the bridge
        restarted mid-menu): send them to the dialplan's fallback queue."""
        channel = str(item.get("channel"))
        uniqueid = str(item.get("uniqueid"))
        linkedid = str(item.get("linkedid") or uniqueid)
        agi = AsyncAgiChannel(self.ami, channel, uniqueid, linkedid, {})
        self._agi[channel] = agi
        self._run(self._break_to_fallback(agi, self.recorder(linkedid, uniqueid),
                                          "menu session lost across a reconnect",
                                          application=str(item.get("application", ""))), agi)

    # -- when the service stops --------------------------------------------------------

    async def hand_over(self, _ami: AmiConnection) -> None:
        """Every caller still in the menu goes to the dialplan's fallback queue
        (a person) before the AMI connection closes, instead of waiting in
        silence until ``TIMEOUT(absolute)``."""
        # Only callers whose menu is still running: one the menu queued (EXEC Queue
        # runs inside the AGI session) is waiting for a person already.
        live = [(channel, agi) for channel, agi in self._agi.items()
                if not agi.ended and channel in self._task_of]
        for channel, _agi in live:
            self._task_of[channel].cancel()
        breaks = []
        for channel, agi in live:
            log.info("menu.handed_over", channel=channel, call_id=agi.linkedid)
            record = self.recorder(agi.linkedid, agi.uniqueid)
            breaks.append(self._break_to_fallback(agi, record, "the service is stopping"))
        await asyncio.gather(*breaks)

    # -- helpers -----------------------------------------------------------------------

    def _run(self, work: Any, agi: AsyncAgiChannel) -> None:
        async def bound() -> None:
            with bound_call(agi.linkedid):
                await work

        channel = agi.channel
        task = asyncio.create_task(bound(), name=f"menu-{agi.uniqueid}")
        self._tasks.add(task)
        self._task_of[channel] = task

        def done(finished: asyncio.Task) -> None:
            self._tasks.discard(finished)
            if self._task_of.get(channel) is finished:
                del self._task_of[channel]
            if self._closing.get(channel) is agi:
                del self._closing[channel]

        task.add_done_callback(done)

    def recorder(self, linkedid: str, uniqueid: str) -> Record:
        """The menu's timeline writer for one caller: each row gets a key of its
        own (menu steps are not AMI events and are never replayed)."""
        run = uuid.uuid4().hex
        counter = iter(range(1, 1_000_000))
        writer = self.core.writer

        def record(kind: str, detail: Mapping[str, Any]) -> None:
            entry = TimelineEntry(linkedid=linkedid, uniqueid=uniqueid, occurred_at=_now(), kind=kind,
                                  detail=dict(detail), dedupe_key=dedupe_key("menu", run, next(counter)))
            writer.submit(ChangeSet(timeline=[entry]))

        return record

    async def _break_to_fallback(self, agi: AsyncAgiChannel, record: Record, reason: str,
                                 application: str | None = None) -> None:
        record("menu.rescued", {"reason": reason, **({"application": application} if application else {})})
        try:
            await agi.command("ASYNCAGI BREAK", timeout=5.0)
        except (AgiHangup, AgiCommandError, asyncio.TimeoutError) as exc:
            log.error("menu.fallback_failed", error=repr(exc))

"""Every use of the supervisor codes, in the audit log.

From a supervisor's phone, ``*1``/``*2``/``*3`` + extension listens to, whispers
to or barges into that agent's call. extensions.conf's ``[hotline-supervisor]``
decides from the endpoint's ``HOTLINE_ROLE`` variable (generated into
pjsip_extensions.conf from the supervisors' accounts and the settings) and
raises an AMI ``UserEvent`` before anything happens: ``HotlineSpy`` (allowed)
or ``HotlineSpyRefused`` (another phone: fast-busy and hang-up), with the
``Spyer`` endpoint (``CHANNEL(endpoint)``, the authenticated phone, not the
caller ID it sends), the ``Target`` extension and the ``Mode``.

Each becomes an audit row (``spy.started`` / ``spy.refused``, actor
``phone:<extension>``, subject ``extension:<target>``, the mode, the channel
and the accounts at that phone), written by the call writer in the same
transactions as the calls: a database outage delays it, never loses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agents import store
from hotline.core import Core
from hotline.facts import ChangeSet
from hotline.logs import get_logger
from ivr.ami.message import Event
from ivr.calls.tracker import event_time

log = get_logger(__name__)

SINK = "spy_audit"
# UserEvent names (extensions.conf) -> audit actions.
ACTIONS = {"hotlinespy": "spy.started", "hotlinespyrefused": "spy.refused"}
MODES = frozenset({"listen", "whisper", "barge"})


@dataclass(frozen=True)
class SpyUse:
    """One supervisor code dialled (plain data: the call writer may spill it)."""

    at: datetime
    action: str            # spy.started / spy.refused
    spyer: str             # the dialling phone's endpoint
    target: str            # the extension to listen to
    mode: str
    channel: str | None
    uniqueid: str | None
    linkedid: str | None


def spy_use(event: Event, at: datetime) -> SpyUse | None:
    """The use of a supervisor code a UserEvent reports; None for any other UserEvent."""
    action = ACTIONS.get(str(event.get("userevent", "")).strip().lower())
    if action is None:
        return None
    mode = str(event.get("mode", "")).strip()
    return SpyUse(at=at, action=action, spyer=str(event.get("spyer", "")).strip() or "unknown",
                  target=str(event.get("target", "")).strip(), mode=mode if mode in MODES else f"unknown:{mode}",
                  channel=event.get("channel"), uniqueid=event.get("uniqueid"), linkedid=event.get("linkedid"))


class SpyAudit:
    def __init__(self, core: Core):
        self.core = core

    def subscribe(self) -> None:
        self.core.writer.add_sink(SINK, store.write_spy_uses)
        self.core.ami_events.subscribe("UserEvent", self.user_event)

    def user_event(self, event: Event, received_at: datetime) -> None:
        use = spy_use(event, event_time(event, received_at))
        if use is None:
            return
        if use.action == "spy.refused":
            log.warning("agents.spy_refused", spyer=use.spyer, target=use.target, mode=use.mode,
                        channel=use.channel)
        else:
            log.info("agents.spy_started", spyer=use.spyer, target=use.target, mode=use.mode, channel=use.channel)
        self.core.writer.submit(ChangeSet(rows={SINK: [use]}))

"""Every agent's console state (离线 / 空闲 / 振铃 / 通话中 / 整理中 / 小休 / 不可用),
from Asterisk's queue and device events. Pure: events and times in, changes
out; no I/O and no clock.

An agent is the queue member ``PJSIP/<ext>``. What the board keeps for each:

* its memberships (queue, penalty, paused and why) from ``QueueMemberAdded /
  Removed / Pause / Status / Penalty`` and, after every login, QueueStatus;
* the queue call offered or answered, from ``AgentCalled`` (ringing),
  ``AgentConnect`` (in the call), ``AgentRingNoAnswer`` (not answered: reported,
  never paused), ``AgentComplete`` or the hangup of the agent's leg (the end);
* the phone's device state (``QueueMemberStatus`` Status, ``DeviceStateChange``
  of ``PJSIP/<ext>``): unavailable when the phone is not registered. A phone may
  have two contacts (pjsip.conf max_contacts = 2), so ``ContactStatus`` alone
  cannot say the phone is gone; it says why (unregistered, unreachable) when
  the device state does;
* the console's own wrap-up (整理中) after each answered call, until the agent
  marks the call done (:meth:`AgentBoard.finish_wrapup`) or ``wrapup_max``
  passes (:meth:`AgentBoard.expire_wrapup`).

The state shown is derived from these, first match wins: not a member of any
queue → 离线; answered call or phone busy → 通话中; offered call or phone
ringing → 振铃; phone unavailable → 不可用; wrap-up → 整理中; paused in every
queue → 小休 (with the reason); else 空闲.

Redirect out of a queue bridge (the console's transfer) hangs the agent's leg up
at once but AgentComplete only comes when the caller hangs up, minutes later
(captured, actions.jsonl); so the agent's call ends with whichever comes first,
and a late AgentComplete of a call already over is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum, IntEnum
from typing import Any, Iterable

from agents.membership import QueueMemberState, member_state
from agents.seat import TECH, extension_of
from ivr.ami.message import Event, event_name
from ivr.calls.tracker import known


class AgentStatus(str, Enum):
    OFFLINE = "offline"
    IDLE = "idle"
    RINGING = "ringing"
    IN_CALL = "in_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"

    @property
    def label(self) -> str:
        """What the console shows."""
        return LABELS[self]


LABELS = {
    AgentStatus.OFFLINE: "离线", AgentStatus.IDLE: "空闲", AgentStatus.RINGING: "振铃",
    AgentStatus.IN_CALL: "通话中", AgentStatus.WRAP_UP: "整理中", AgentStatus.PAUSED: "小休",
    AgentStatus.UNAVAILABLE: "不可用",
}


class Device(IntEnum):
    """Asterisk's device states (``enum ast_device_state``; QueueMember ``Status``)."""

    UNKNOWN = 0
    NOT_INUSE = 1
    INUSE = 2
    BUSY = 3
    INVALID = 4
    UNAVAILABLE = 5
    RINGING = 6
    RINGINUSE = 7
    ONHOLD = 8


ON_A_CALL = frozenset({Device.INUSE, Device.BUSY, Device.RINGINUSE, Device.ONHOLD})
UNREACHABLE = frozenset({Device.INVALID, Device.UNAVAILABLE})
# What ends or changes a call (a state change the device state may follow).
CALL_CAUSES = frozenset({"offered", "answered", "ring_no_answer", "call_ended", "offer_ended", "caller_abandoned"})
# ContactStatus values that say a contact is gone, and what the console says about it.
CONTACT_GONE = {"removed": "unregistered", "unreachable": "unreachable"}


@dataclass(frozen=True)
class Membership:
    queue: str
    penalty: int
    paused: bool
    reason: str | None
    paused_since: datetime | None = None


@dataclass(frozen=True)
class CallInfo:
    """The queue call offered to or answered by the agent (the caller's side)."""

    uniqueid: str
    linkedid: str | None
    queue: str | None
    caller_channel: str | None
    caller_number: str | None
    caller_name: str | None
    agent_channel: str | None
    agent_uniqueid: str | None
    connected: bool
    since: datetime


@dataclass(frozen=True)
class WrapUp:
    uniqueid: str
    linkedid: str | None
    since: datetime
    deadline: datetime


@dataclass(frozen=True)
class AgentState:
    """One agent as the console shows it."""

    interface: str
    name: str | None
    status: AgentStatus
    since: datetime
    reason: str | None
    call: CallInfo | None
    wrapup: WrapUp | None
    queues: tuple[Membership, ...]
    device: Device

    @property
    def extension(self) -> str:
        return extension_of(self.interface)

    def as_json(self) -> dict[str, Any]:
        call = self.call
        return {
            "interface": self.interface, "extension": self.extension, "name": self.name,
            "state": self.status.value, "label": self.status.label, "since": _iso(self.since),
            "reason": self.reason, "device": self.device.name,
            "call": None if call is None else {
                "uniqueid": call.uniqueid, "linkedid": call.linkedid, "queue": call.queue,
                "caller_number": call.caller_number, "caller_name": call.caller_name,
                "caller_channel": call.caller_channel, "agent_channel": call.agent_channel,
                "phase": "connected" if call.connected else "ringing", "since": _iso(call.since)},
            "wrapup": None if self.wrapup is None else {
                "uniqueid": self.wrapup.uniqueid, "linkedid": self.wrapup.linkedid,
                "since": _iso(self.wrapup.since), "deadline": _iso(self.wrapup.deadline)},
            "queues": [{"queue": m.queue, "penalty": m.penalty, "paused": m.paused, "reason": m.reason}
                       for m in self.queues],
        }


@dataclass(frozen=True)
class StateChange:
    """The agent's shown state changed (or, in the same state, its reason or call)."""

    agent: AgentState
    before: AgentStatus
    cause: str             # what made it change: login, pause, offered, answered, done, wrapup_max, resync, ...
    uniqueid: str | None   # the call it is about (caller's Uniqueid), if any
    at: datetime
    moved: bool = True     # the state or its reason changed (False: only the call or the queues did)


@dataclass(frozen=True)
class RingNoAnswer:
    """The agent was offered a call and did not answer (AgentRingNoAnswer)."""

    agent: AgentState
    queue: str | None
    uniqueid: str | None
    linkedid: str | None
    caller_number: str | None
    ring_ms: int | None
    at: datetime


Fact = StateChange | RingNoAnswer


@dataclass
class _Agent:
    interface: str
    name: str | None
    since: datetime
    status: AgentStatus = AgentStatus.OFFLINE
    reason: str | None = None
    memberships: dict[str, Membership] = field(default_factory=dict)
    call: CallInfo | None = None
    wrapup: WrapUp | None = None
    last_call: str | None = None        # Uniqueid of the last call that ended
    pending_cause: str | None = None    # what changed the call while the state stayed the same
    shown: tuple = ()                   # what the last change published


class AgentBoard:
    def __init__(self, wrapup_max: float):
        self.wrapup_max = timedelta(seconds=wrapup_max)
        self._agents: dict[str, _Agent] = {}
        self._devices: dict[str, Device] = {}
        self._notes: dict[str, str] = {}         # interface -> why its phone is gone
        self._legs: dict[str, str] = {}          # agent leg Uniqueid -> interface
        self._callers: dict[str, set[str]] = {}  # caller Uniqueid -> interfaces offered or answering it
        self._handlers = {
            "queuememberadded": self._member, "queuememberremoved": self._member,
            "queuememberpause": self._member, "queuememberstatus": self._member,
            "queuememberpenalty": self._member,
            "agentcalled": self._called, "agentconnect": self._connected,
            "agentringnoanswer": self._no_answer, "agentcomplete": self._completed,
            "hangup": self._hangup, "queuecallerabandon": self._abandoned,
            "devicestatechange": self._device_state, "contactstatus": self._contact,
        }

    # -- reading ------------------------------------------------------------------------

    def state(self, interface: str) -> AgentState | None:
        agent = self._agents.get(interface)
        return None if agent is None else self._snapshot(agent)

    def states(self) -> list[AgentState]:
        return [self._snapshot(a) for a in sorted(self._agents.values(), key=lambda a: a.interface)]

    # -- events -------------------------------------------------------------------------

    def apply(self, event: Event, at: datetime) -> list[Fact]:
        """The facts one AMI event (headers normalised) makes; empty for any other."""
        handler = self._handlers.get(event_name(event))
        return handler(event, at) if handler is not None else []

    def _member(self, event: Event, at: datetime) -> list[Fact]:
        name = event_name(event)
        member = member_state(event, removed=name == "queuememberremoved")
        if not member.interface or not member.queue:
            return []
        agent = self._agent(member.interface, member.member_name, at)
        cause = {"queuememberadded": "login", "queuememberremoved": "logout",
                 "queuememberpause": "pause" if member.paused else "unpause"}.get(name, "device")
        if member.removed:
            agent.memberships.pop(member.queue, None)
            if not agent.memberships:
                self._end_call(agent)
                agent.wrapup = None
        else:
            agent.memberships[member.queue] = _membership(member, agent.memberships.get(member.queue), at)
        if member.status is not None and not member.removed:
            self._set_device(member.interface, _device(member.status))
        return self._settle(agent, at, cause)

    def _called(self, event: Event, at: datetime) -> list[Fact]:
        return self._take_call(event, at, connected=False)

    def _connected(self, event: Event, at: datetime) -> list[Fact]:
        return self._take_call(event, at, connected=True)

    def _take_call(self, event: Event, at: datetime, connected: bool) -> list[Fact]:
        """AgentCalled (offered) or AgentConnect (answered): the call the agent has now."""
        agent = self._call_agent(event, at)
        uniqueid = event.get("uniqueid")
        if agent is None or not uniqueid:
            return []
        if not connected and agent.call is not None and agent.call.connected:
            return []     # ringinuse=no: app_queue does not offer a second call
        self._forget_call(agent)
        if connected:
            agent.wrapup = None     # a new call: the previous wrap-up is over
        agent.call = CallInfo(
            uniqueid=uniqueid, linkedid=event.get("linkedid"), queue=event.get("queue"),
            caller_channel=event.get("channel"), caller_number=known(event.get("calleridnum")),
            caller_name=known(event.get("calleridname")), agent_channel=event.get("destchannel"),
            agent_uniqueid=event.get("destuniqueid"), connected=connected, since=at)
        self._index(agent)
        return self._settle(agent, at, "answered" if connected else "offered", uniqueid)

    def _no_answer(self, event: Event, at: datetime) -> list[Fact]:
        agent = self._call_agent(event, at)
        uniqueid = event.get("uniqueid")
        if agent is None:
            return []
        call = agent.call
        facts: list[Fact] = []
        if call is not None and not call.connected and call.uniqueid == uniqueid:
            self._forget_call(agent)
            agent.call = None
            facts += self._settle(agent, at, "ring_no_answer", uniqueid)
        ring = event.get("ringtime")
        facts.append(RingNoAnswer(
            agent=self._snapshot(agent), queue=event.get("queue"), uniqueid=uniqueid,
            linkedid=event.get("linkedid"), caller_number=known(event.get("calleridnum")),
            ring_ms=int(ring) if str(ring or "").strip().isdigit() else None, at=at))
        return facts

    def _completed(self, event: Event, at: datetime) -> list[Fact]:
        agent = self._call_agent(event, at)
        uniqueid = event.get("uniqueid")
        if agent is None or not uniqueid:
            return []
        call = agent.call
        if call is not None and call.uniqueid == uniqueid:
            self._wrap_up(agent, at)
        elif call is None and agent.wrapup is None and agent.last_call != uniqueid:
            # The call was answered while we were away (or before we started).
            agent.wrapup = WrapUp(uniqueid, event.get("linkedid"), at, at + self.wrapup_max)
            agent.last_call = uniqueid
        else:
            return []     # already over (the agent's leg hung up first, e.g. after a Redirect)
        return self._settle(agent, at, "call_ended", uniqueid)

    def _hangup(self, event: Event, at: datetime) -> list[Fact]:
        uniqueid = event.get("uniqueid")
        if not uniqueid:
            return []
        facts: list[Fact] = []
        interfaces = set(self._callers.get(uniqueid, ()))
        if uniqueid in self._legs:
            interfaces.add(self._legs[uniqueid])
        for interface in sorted(interfaces):
            agent = self._agents.get(interface)
            call = agent.call if agent is not None else None
            if agent is None or call is None or uniqueid not in (call.uniqueid, call.agent_uniqueid):
                continue
            if call.connected:
                self._wrap_up(agent, at)
                facts += self._settle(agent, at, "call_ended", call.uniqueid)
            else:
                self._forget_call(agent)
                agent.call = None
                facts += self._settle(agent, at, "offer_ended", call.uniqueid)
        return facts

    def _abandoned(self, event: Event, at: datetime) -> list[Fact]:
        facts: list[Fact] = []
        uniqueid = event.get("uniqueid")
        for interface in sorted(self._callers.get(uniqueid or "", ())):
            agent = self._agents[interface]
            if agent.call is not None and not agent.call.connected:
                self._forget_call(agent)
                agent.call = None
                facts += self._settle(agent, at, "caller_abandoned", uniqueid)
        return facts

    def _device_state(self, event: Event, at: datetime) -> list[Fact]:
        device = str(event.get("device", ""))
        if not device.startswith(TECH):
            return []      # Queue:..._avail and other hints
        try:
            self._set_device(device, Device[str(event.get("state", "")).strip().upper()])
        except KeyError:
            return []
        agent = self._agents.get(device)
        return self._settle(agent, at, "device") if agent is not None else []

    def _contact(self, event: Event, at: datetime) -> list[Fact]:
        endpoint = event.get("endpointname") or event.get("aor")
        if not endpoint:
            return []
        interface = f"{TECH}{endpoint}"
        note = CONTACT_GONE.get(str(event.get("contactstatus", "")).strip().lower())
        if note is not None:
            self._notes[interface] = note
        elif self._devices.get(interface) not in UNREACHABLE:
            # A contact back while the device is still unavailable: the device state
            # that follows says when the phone is reachable again (and clears the note).
            self._notes.pop(interface, None)
        agent = self._agents.get(interface)
        return self._settle(agent, at, f"phone_{note or 'registered'}") if agent is not None else []

    # -- the console's own ----------------------------------------------------------------

    def finish_wrapup(self, interface: str, at: datetime) -> StateChange | None:
        """The agent marked the call done; None when not in a wrap-up."""
        agent = self._agents.get(interface)
        if agent is None or agent.wrapup is None:
            return None
        uniqueid = agent.wrapup.uniqueid
        agent.wrapup = None
        return _first(self._settle(agent, at, "done", uniqueid))

    def expire_wrapup(self, interface: str, uniqueid: str, at: datetime) -> StateChange | None:
        """``wrapup_max`` passed for that call's wrap-up (if it is still on)."""
        agent = self._agents.get(interface)
        if agent is None or agent.wrapup is None or agent.wrapup.uniqueid != uniqueid or at < agent.wrapup.deadline:
            return None
        agent.wrapup = None
        return _first(self._settle(agent, at, "wrapup_max", uniqueid))

    # -- after every login ------------------------------------------------------------------

    def rebuild(self, members: Iterable[QueueMemberState], live_uniqueids: Iterable[str],
                at: datetime) -> list[StateChange]:
        """Asterisk's QueueStatus members and its live channels (CoreShowChannels)
        are the truth after a (re)connect: memberships, pauses and device states
        become what is listed (a change made while we were away included); a call
        whose caller or agent leg is gone ended meanwhile (its wrap-up starts
        now); an agent no longer listed has logged out."""
        live = set(live_uniqueids)
        listed: dict[str, dict[str, Membership]] = {}
        names: dict[str, str | None] = {}
        for member in members:
            if not member.interface or not member.queue:
                continue
            agent = self._agents.get(member.interface)
            before = agent.memberships.get(member.queue) if agent is not None else None
            listed.setdefault(member.interface, {})[member.queue] = _membership(member, before, at)
            names[member.interface] = member.member_name or names.get(member.interface)
            if member.status is not None:
                self._set_device(member.interface, _device(member.status))
        changes: list[StateChange] = []
        for interface in sorted(set(self._agents) | set(listed)):
            agent = self._agent(interface, names.get(interface), at)
            agent.memberships = listed.get(interface, {})
            call = agent.call
            if call is not None and not ({call.uniqueid, call.agent_uniqueid} <= live):
                if call.connected:
                    self._wrap_up(agent, at)
                else:
                    self._forget_call(agent)
                    agent.call = None
            if not agent.memberships:
                self._end_call(agent)
                agent.wrapup = None
            changes += [c for c in self._settle(agent, at, "resync") if isinstance(c, StateChange)]
        return changes

    # -- internals ----------------------------------------------------------------------------

    def _agent(self, interface: str, name: str | None, at: datetime) -> _Agent:
        agent = self._agents.get(interface)
        if agent is None:
            agent = self._agents[interface] = _Agent(interface, None, at)
            agent.shown = (AgentStatus.OFFLINE, None, None, None, ())
        if name and name != interface:
            agent.name = name
        return agent

    def _set_device(self, interface: str, device: Device) -> None:
        self._devices[interface] = device
        if device not in UNREACHABLE:
            self._notes.pop(interface, None)

    def _call_agent(self, event: Event, at: datetime) -> _Agent | None:
        interface = event.get("interface")
        if not interface:
            return None
        return self._agent(str(interface), known(event.get("membername")), at)

    def _index(self, agent: _Agent) -> None:
        call = agent.call
        if call is None:
            return
        self._callers.setdefault(call.uniqueid, set()).add(agent.interface)
        if call.agent_uniqueid:
            self._legs[call.agent_uniqueid] = agent.interface

    def _forget_call(self, agent: _Agent) -> None:
        call = agent.call
        if call is None:
            return
        waiting = self._callers.get(call.uniqueid)
        if waiting is not None:
            waiting.discard(agent.interface)
            if not waiting:
                del self._callers[call.uniqueid]
        if call.agent_uniqueid and self._legs.get(call.agent_uniqueid) == agent.interface:
            del self._legs[call.agent_uniqueid]

    def _end_call(self, agent: _Agent) -> None:
        self._forget_call(agent)
        agent.call = None

    def _wrap_up(self, agent: _Agent, at: datetime) -> None:
        """The answered call is over: the console's wrap-up starts."""
        call = agent.call
        assert call is not None
        self._end_call(agent)
        agent.wrapup = WrapUp(call.uniqueid, call.linkedid, at, at + self.wrapup_max)
        agent.last_call = call.uniqueid

    def _derive(self, agent: _Agent) -> tuple[AgentStatus, str | None]:
        device = self._devices.get(agent.interface, Device.UNKNOWN)
        call = agent.call
        if not agent.memberships:
            return AgentStatus.OFFLINE, None
        if (call is not None and call.connected) or device in ON_A_CALL:
            return AgentStatus.IN_CALL, None
        if call is not None or device is Device.RINGING:
            return AgentStatus.RINGING, None
        if device in UNREACHABLE:
            return AgentStatus.UNAVAILABLE, self._notes.get(agent.interface)
        if agent.wrapup is not None:
            return AgentStatus.WRAP_UP, None
        if all(m.paused for m in agent.memberships.values()):
            reasons = [m.reason for m in agent.memberships.values() if m.reason]
            return AgentStatus.PAUSED, reasons[0] if reasons else None
        return AgentStatus.IDLE, None

    def _settle(self, agent: _Agent, at: datetime, cause: str, uniqueid: str | None = None) -> list[Fact]:
        """A change when what the console shows differs from the last one: the
        state or its reason (``moved``), or only the call (offered, then answered)
        or the queues (one more joined, a penalty changed)."""
        status, reason = self._derive(agent)
        call = agent.call
        shown = (status, reason, call.uniqueid if call else None, call.connected if call else None,
                 tuple(sorted(agent.memberships.items())))
        if shown == agent.shown:
            return []
        moved = (status, reason) != (agent.status, agent.reason)
        if moved and cause == "device":
            # The device state often follows what caused it by a few milliseconds.
            if status is AgentStatus.UNAVAILABLE and reason:
                cause = f"phone_{reason}"     # after the ContactStatus that said why
            elif agent.pending_cause:
                cause = agent.pending_cause   # e.g. AgentComplete while the phone was still in use
            elif status is AgentStatus.IN_CALL and call is not None:
                cause = "answered"
        before = agent.status
        if moved:
            agent.pending_cause = None
            agent.since = at
            if status is AgentStatus.PAUSED:
                # Asterisk knows when the pause began (LastPause), also across our reconnects.
                started = [m.paused_since for m in agent.memberships.values() if m.paused_since]
                agent.since = min(started) if started else at
        elif cause in CALL_CAUSES:
            agent.pending_cause = cause
        agent.status, agent.reason, agent.shown = status, reason, shown
        uniqueid = uniqueid or (call.uniqueid if call else agent.wrapup.uniqueid if agent.wrapup else None)
        return [StateChange(self._snapshot(agent), before, cause, uniqueid, at, moved)]

    def _snapshot(self, agent: _Agent) -> AgentState:
        return AgentState(
            interface=agent.interface, name=agent.name, status=agent.status, since=agent.since,
            reason=agent.reason, call=agent.call, wrapup=agent.wrapup,
            queues=tuple(agent.memberships[q] for q in sorted(agent.memberships)),
            device=self._devices.get(agent.interface, Device.UNKNOWN))


def _membership(member: QueueMemberState, before: Membership | None, at: datetime) -> Membership:
    paused_since = None
    if member.paused:
        if member.last_pause:
            paused_since = datetime.fromtimestamp(member.last_pause, tz=timezone.utc)
        elif before is not None and before.paused and before.paused_since:
            paused_since = before.paused_since
        else:
            paused_since = at
    penalty = member.penalty if member.penalty is not None else (before.penalty if before else 0)
    return Membership(queue=member.queue, penalty=penalty, paused=member.paused,
                      reason=member.paused_reason if member.paused else None, paused_since=paused_since)


def _device(status: int) -> Device:
    try:
        return Device(status)
    except ValueError:
        return Device.UNKNOWN


def _first(facts: list[Fact]) -> StateChange | None:
    return next((f for f in facts if isinstance(f, StateChange)), None)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()

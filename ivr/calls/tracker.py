"""AMI events → call facts and timeline entries. Pure: no I/O, no clock.

A call is everything that shares the caller channel's Linkedid. Each event that
matters for a call becomes a timeline entry with a dedupe key derived from the
event's own content, and may add facts to the call record (queue, agent,
hold/talk time, end). Facts are write-once in the store, so an event that is
delivered twice, or a state replayed by a resync after a reconnect, cannot count
twice.

Asterisk's headers are matched case-insensitively (the Cdr event spells
``UniqueID`` where channel events say ``Uniqueid``), and nothing depends on the
order of headers or on the exact interleaving of neighbouring events.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

from hotline.facts import CallFacts, ChangeSet, RecordingFinished, TimelineEntry, dedupe_key
from ivr.ami.message import Event

# Variables whose VarSet events carry facts; every other VarSet is noise.
RECORDING_VARIABLE = "mixmonitor_filename"
INTENT_VARIABLE = "hotline_intent"
# Headers that differ between two deliveries of the same happening, or carry nothing.
_NOT_IN_KEY = {"privilege", "actionid"}
_ENDED_MEMORY = 20000
# SoftHangupRequest's Cause is the soft-hangup reason, a bit mask (include/asterisk/
# channel.h): AST_SOFTHANGUP_SHUTDOWN is Asterisk hanging every channel up on its way
# down ("core restart now", "core stop now"); capture 5 shows Cause 4, then Cause 16
# (AST_SOFTHANGUP_APPUNLOAD), then the Hangup with an ordinary "16 Normal Clearing".
SOFTHANGUP_SHUTDOWN = 1 << 2
# calls.ended_by when Asterisk, not a person, ended the call.
ENDED_BY_RESTART = "asterisk_restart"
ENDED_BY_SHUTDOWN = "asterisk_shutdown"


@dataclass
class _Channel:
    uniqueid: str
    linkedid: str
    name: str
    recording_path: str | None = None


def known(value: Any) -> Any:
    """Asterisk writes ``<unknown>`` where a caller ID is absent: store nothing."""
    return None if value in (None, "", "<unknown>") else value


def member_name(event: Event) -> str | None:
    """The queue member's name; app_queue reports the interface there when the
    member was added without one, which is not a name."""
    name = known(event.get("membername"))
    return None if name is not None and name == event.get("interface") else name


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def event_time(event: Event, received_at: datetime) -> datetime:
    """Asterisk's own time when manager.conf has timestampevents=yes, else arrival."""
    stamp = event.get("timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), tz=timezone.utc)
        except (TypeError, ValueError, OverflowError):
            pass
    return received_at


class CallTracker:
    def __init__(self, queue_departments: Mapping[str, str]):
        self._queue_departments = dict(queue_departments)
        self._channels: dict[str, _Channel] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()  # uniqueid -> linkedid, for late Cdrs
        # Calls whose channels Asterisk hung up because it is going down, until the
        # Shutdown event says whether it restarts (it comes after their Hangups).
        self._cut_by_shutdown: OrderedDict[str, datetime] = OrderedDict()
        self._handlers: dict[str, Callable[[Event, datetime, ChangeSet], None]] = {
            "newchannel": self._newchannel,
            "newstate": self._newstate,
            "varset": self._varset,
            "dialbegin": self._dial,
            "dialend": self._dial,
            "bridgeenter": self._bridge,
            "bridgeleave": self._bridge,
            "queuecallerjoin": self._queue_join,
            "queuecallerleave": self._queue_leave,
            "queuecallerabandon": self._queue_abandon,
            "agentcalled": self._agent_called,
            "agentringnoanswer": self._agent_no_answer,
            "agentconnect": self._agent_connect,
            "agentcomplete": self._agent_complete,
            "asyncagistart": self._menu_start,
            "asyncagiend": self._menu_end,
            "mixmonitorstart": self._mixmonitor,
            "mixmonitorstop": self._mixmonitor,
            "hangup": self._hangup,
            "softhanguprequest": self._soft_hangup,
            "shutdown": self._shutdown,
            "cdr": self._cdr,
        }

    @property
    def live_channels(self) -> int:
        return len(self._channels)

    @property
    def live_uniqueids(self) -> frozenset[str]:
        """The channels Asterisk has now, as far as the events and the last resync tell."""
        return frozenset(self._channels)

    def linkedid_of(self, uniqueid: str) -> str | None:
        channel = self._channels.get(uniqueid)
        if channel is not None:
            return channel.linkedid
        return self._ended.get(uniqueid)

    def recording_path_of(self, uniqueid: str) -> str | None:
        channel = self._channels.get(uniqueid)
        return channel.recording_path if channel else None

    def apply(self, event: Event, received_at: datetime) -> ChangeSet:
        """The changes one AMI event (headers normalised) makes; empty for noise."""
        changes = ChangeSet()
        handler = self._handlers.get(str(event.get("event", "")).lower())
        if handler is not None:
            handler(event, event_time(event, received_at), changes)
        return changes

    # -- helpers ---------------------------------------------------------------------

    def _ids(self, event: Event) -> tuple[str | None, str | None]:
        uniqueid = event.get("uniqueid")
        linkedid = event.get("linkedid") or (self.linkedid_of(uniqueid) if uniqueid else None)
        return uniqueid, linkedid

    def _timeline(self, changes: ChangeSet, event: Event, at: datetime, kind: str,
                  detail: Mapping[str, Any], linkedid: str | None = None,
                  uniqueid: str | None = None) -> None:
        event_uniqueid, event_linkedid = self._ids(event)
        linkedid = linkedid or event_linkedid
        uniqueid = uniqueid or event_uniqueid
        if not linkedid:
            return
        content = sorted((k, str(v)) for k, v in event.items() if k not in _NOT_IN_KEY)
        changes.timeline.append(
            TimelineEntry(
                linkedid=linkedid,
                uniqueid=uniqueid,
                occurred_at=at,
                kind=kind,
                detail={k: v for k, v in detail.items() if v not in (None, "")},
                dedupe_key=dedupe_key("ami", content),
            )
        )

    def _facts(self, changes: ChangeSet, linkedid: str | None, **fields: Any) -> None:
        if linkedid:
            changes.calls.append(CallFacts(linkedid, {k: v for k, v in fields.items() if v is not None}))

    def _ensure_call(self, changes: ChangeSet, linkedid: str, at: datetime) -> None:
        # A call row must exist before its timeline rows; started_at is write-once.
        self._facts(changes, linkedid, started_at=at)

    # -- channels --------------------------------------------------------------------

    def _newchannel(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        uniqueid, linkedid = event.get("uniqueid"), event.get("linkedid")
        if not uniqueid or not linkedid:
            return
        self._channels[uniqueid] = _Channel(uniqueid, linkedid, str(event.get("channel", "")))
        caller_leg = uniqueid == linkedid
        if caller_leg:
            self._facts(
                changes, linkedid,
                started_at=at,
                caller_channel=event.get("channel"),
                caller_number=event.get("calleridnum"),
                caller_name=known(event.get("calleridname")),
                dialed_number=event.get("exten"),
            )
        else:
            self._ensure_call(changes, linkedid, at)
        self._timeline(changes, event, at, "channel.created", {
            "channel": event.get("channel"),
            "role": "caller" if caller_leg else "leg",
            "caller_number": event.get("calleridnum"),
            "caller_name": known(event.get("calleridname")),
            "exten": event.get("exten"),
        })

    def _newstate(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        if str(event.get("channelstatedesc", "")).lower() != "up":
            return
        _, linkedid = self._ids(event)
        if linkedid:
            self._ensure_call(changes, linkedid, at)
        self._timeline(changes, event, at, "channel.answered", {"channel": event.get("channel")})

    def _varset(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        variable = str(event.get("variable", "")).lower()
        uniqueid, linkedid = self._ids(event)
        if variable == RECORDING_VARIABLE and uniqueid:
            path = str(event.get("value", "")).strip()
            channel = self._channels.get(uniqueid)
            if channel is not None and path:
                channel.recording_path = path
            if linkedid and path and uniqueid == linkedid:
                self._facts(changes, linkedid, started_at=at, recording_path=path)
        elif variable == INTENT_VARIABLE and linkedid and event.get("value"):
            self._facts(changes, linkedid, started_at=at, department=event.get("value"))

    def _dial(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        name = str(event.get("event")).lower()
        _, linkedid = self._ids(event)
        if linkedid:
            self._ensure_call(changes, linkedid, at)
        self._timeline(changes, event, at, "dial.begin" if name == "dialbegin" else "dial.end", {
            "channel": event.get("channel"),
            "destination": event.get("destchannel"),
            "dialstring": event.get("dialstring"),
            "status": event.get("dialstatus"),
        })

    def _bridge(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        name = str(event.get("event")).lower()
        _, linkedid = self._ids(event)
        if linkedid:
            self._ensure_call(changes, linkedid, at)
        self._timeline(changes, event, at, "bridge.enter" if name == "bridgeenter" else "bridge.leave", {
            "channel": event.get("channel"),
            "bridge": event.get("bridgeuniqueid"),
            "members": event.get("bridgenumchannels"),
        })

    def _hangup(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        uniqueid, linkedid = self._ids(event)
        if not uniqueid or not linkedid:
            return
        channel = self._channels.pop(uniqueid, None)
        self._remember_ended(uniqueid, linkedid)
        self._ensure_call(changes, linkedid, at)
        cause = _int(event.get("cause"))
        if uniqueid == linkedid:
            self._facts(changes, linkedid, ended_at=at, hangup_cause=cause,
                        hangup_cause_text=event.get("cause-txt"))
        self._timeline(changes, event, at, "channel.hangup", {
            "channel": event.get("channel"),
            "cause": cause,
            "cause_text": event.get("cause-txt"),
        })
        if channel is not None and channel.recording_path:
            changes.recordings.append(RecordingFinished(linkedid, uniqueid, channel.recording_path))

    def _soft_hangup(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        """Asterisk hangs a channel up because it is shutting down: the Hangup that
        follows says "Normal Clearing" like a caller's would, so remember the call."""
        cause = _int(event.get("cause"))
        uniqueid, linkedid = self._ids(event)
        if cause is None or not cause & SOFTHANGUP_SHUTDOWN or not linkedid:
            return
        self._cut_by_shutdown.setdefault(linkedid, at)
        self._ensure_call(changes, linkedid, at)
        self._timeline(changes, event, at, "asterisk.shutting_down", {"channel": event.get("channel")})

    def _shutdown(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        """``Event: Shutdown`` (Asterisk stops or restarts), after the Hangups."""
        restart = str(event.get("restart", "")).strip().lower() in ("true", "yes", "1")
        self._settle_shutdown(changes, at, restart, event.get("shutdown"))

    def _settle_shutdown(self, changes: ChangeSet, at: datetime, restart: bool | None,
                         how: str | None = None) -> None:
        """The calls Asterisk hung up on its way down were ended by it: ``ended_by``
        and one ``call.cut_by_asterisk`` row each. ``restart`` None: the Shutdown
        event was never seen (the connection dropped first)."""
        ended_by = ENDED_BY_RESTART if restart else ENDED_BY_SHUTDOWN
        while self._cut_by_shutdown:
            linkedid, cut_at = self._cut_by_shutdown.popitem(last=False)
            self._facts(changes, linkedid, ended_by=ended_by)
            changes.timeline.append(TimelineEntry(
                linkedid=linkedid, uniqueid=linkedid, occurred_at=at, kind="call.cut_by_asterisk",
                detail={k: v for k, v in {"ended_by": ended_by, "restart": restart, "shutdown": how,
                                          "hung_up_at": cut_at.isoformat()}.items() if v is not None},
                dedupe_key=dedupe_key("cut-by-asterisk", linkedid, cut_at.isoformat()),
            ))

    def _remember_ended(self, uniqueid: str, linkedid: str) -> None:
        self._ended[uniqueid] = linkedid
        while len(self._ended) > _ENDED_MEMORY:
            self._ended.popitem(last=False)

    def _cdr(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        uniqueid = event.get("uniqueid")
        linkedid = self.linkedid_of(uniqueid) if uniqueid else None
        linkedid = linkedid or uniqueid
        if not linkedid:
            return
        self._ensure_call(changes, linkedid, at)
        self._timeline(changes, event, at, "cdr", {
            "disposition": event.get("disposition"),
            "duration": _int(event.get("duration")),
            "billable_seconds": _int(event.get("billableseconds")),
            "last_application": event.get("lastapplication"),
            "last_data": event.get("lastdata"),
            "destination_channel": event.get("destinationchannel"),
        }, linkedid=linkedid, uniqueid=uniqueid)

    # -- menu and recording ------------------------------------------------------------

    def _menu_start(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        _, linkedid = self._ids(event)
        self._facts(changes, linkedid, started_at=at, menu_started_at=at)
        self._timeline(changes, event, at, "menu.started", {"channel": event.get("channel")})

    def _menu_end(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        _, linkedid = self._ids(event)
        if linkedid:
            self._ensure_call(changes, linkedid, at)
        self._timeline(changes, event, at, "menu.ended", {"channel": event.get("channel")})

    def _mixmonitor(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        name = str(event.get("event")).lower()
        uniqueid, linkedid = self._ids(event)
        if linkedid:
            self._ensure_call(changes, linkedid, at)
        path = self.recording_path_of(uniqueid) if uniqueid else None
        self._timeline(changes, event, at,
                       "recording.started" if name == "mixmonitorstart" else "recording.stopped",
                       {"channel": event.get("channel"), "path": path})
        # MixMonitorStop only comes from StopMixMonitor; the file is complete now.
        if name == "mixmonitorstop" and uniqueid and linkedid and path:
            channel = self._channels.get(uniqueid)
            if channel is not None:
                channel.recording_path = None
            changes.recordings.append(RecordingFinished(linkedid, uniqueid, path))

    # -- queues ------------------------------------------------------------------------

    def _queue_join(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        _, linkedid = self._ids(event)
        queue = event.get("queue")
        self._facts(changes, linkedid, started_at=at, queue=queue, queued_at=at,
                    department=self._queue_departments.get(str(queue)))
        self._timeline(changes, event, at, "queue.joined", {
            "queue": queue, "position": _int(event.get("position")), "count": _int(event.get("count")),
        })

    def _queue_leave(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        _, linkedid = self._ids(event)
        if linkedid:
            self._ensure_call(changes, linkedid, at)
        self._timeline(changes, event, at, "queue.left", {
            "queue": event.get("queue"), "count": _int(event.get("count")),
        })

    def _queue_abandon(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        _, linkedid = self._ids(event)
        hold = _int(event.get("holdtime"))
        self._facts(changes, linkedid, started_at=at, abandoned_at=at, hold_seconds=hold)
        self._timeline(changes, event, at, "queue.abandoned", {
            "queue": event.get("queue"), "hold_seconds": hold,
            "position": _int(event.get("position")),
        })

    def _agent_called(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        _, linkedid = self._ids(event)
        if linkedid:
            self._ensure_call(changes, linkedid, at)
        self._timeline(changes, event, at, "agent.ringing", {
            "queue": event.get("queue"), "interface": event.get("interface"),
            "member": member_name(event), "agent_channel": event.get("destchannel"),
        })

    def _agent_no_answer(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        _, linkedid = self._ids(event)
        if linkedid:
            self._ensure_call(changes, linkedid, at)
        self._timeline(changes, event, at, "agent.no_answer", {
            "queue": event.get("queue"), "interface": event.get("interface"),
            "ring_ms": _int(event.get("ringtime")),
        })

    def _agent_connect(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        _, linkedid = self._ids(event)
        hold = _int(event.get("holdtime"))
        self._facts(changes, linkedid, started_at=at, agent_interface=event.get("interface"),
                    agent_name=member_name(event), agent_answered_at=at, hold_seconds=hold)
        self._timeline(changes, event, at, "agent.connected", {
            "queue": event.get("queue"), "interface": event.get("interface"),
            "member": member_name(event), "hold_seconds": hold,
            "ring_seconds": _int(event.get("ringtime")),
        })

    def _agent_complete(self, event: Event, at: datetime, changes: ChangeSet) -> None:
        _, linkedid = self._ids(event)
        talk = _int(event.get("talktime"))
        self._facts(changes, linkedid, started_at=at, talk_seconds=talk)
        self._timeline(changes, event, at, "agent.completed", {
            "queue": event.get("queue"), "interface": event.get("interface"),
            "talk_seconds": talk, "reason": event.get("reason"),
        })

    # -- resync after (re)connect --------------------------------------------------------

    def resync(self, channels: Iterable[Event], now: datetime, session: int) -> ChangeSet:
        """Rebuild the live view from CoreShowChannel items. Channels already known
        keep their state; unknown ones (calls that started while we were away) get a
        call row and one ``bridge.resynced`` entry per session."""
        changes = ChangeSet()
        # Asterisk went down without the Shutdown event reaching us: its calls were
        # still cut by it.
        self._settle_shutdown(changes, now, restart=None)
        seen: set[str] = set()
        for item in channels:
            uniqueid, linkedid = item.get("uniqueid"), item.get("linkedid")
            if not uniqueid or not linkedid:
                continue
            seen.add(uniqueid)
            if uniqueid in self._channels:
                continue
            self._channels[uniqueid] = _Channel(uniqueid, linkedid, str(item.get("channel", "")))
            started = now - _duration(item.get("duration"))
            if uniqueid == linkedid:
                self._facts(changes, linkedid, started_at=started, caller_channel=item.get("channel"),
                            caller_number=known(item.get("calleridnum")), caller_name=known(item.get("calleridname")),
                            dialed_number=item.get("exten"))
            else:
                self._ensure_call(changes, linkedid, started)
            changes.timeline.append(TimelineEntry(
                linkedid=linkedid, uniqueid=uniqueid, occurred_at=now, kind="bridge.resynced",
                detail={"channel": item.get("channel"), "application": item.get("application"),
                        "application_data": item.get("applicationdata")},
                dedupe_key=dedupe_key("resync", session, uniqueid),
            ))
        for uniqueid in [u for u in self._channels if u not in seen]:
            # Hung up while we were disconnected: no Hangup event will ever come.
            channel = self._channels.pop(uniqueid)
            self._remember_ended(uniqueid, channel.linkedid)
        return changes

    def queue_entries(self, entries: Iterable[Event], now: datetime, session: int) -> ChangeSet:
        """QueueStatus's QueueEntry items after a (re)connect: a caller who joined
        the queue while the bridge was away gets the queue, its department and
        when it was queued (``Wait`` seconds ago); a call that has them keeps them."""
        changes = ChangeSet()
        for item in entries:
            uniqueid, queue = item.get("uniqueid"), item.get("queue")
            linkedid = self.linkedid_of(str(uniqueid)) if uniqueid else None
            if not linkedid or not queue:
                continue
            wait = _int(item.get("wait"))
            queued_at = now - timedelta(seconds=wait) if wait is not None else None
            self._facts(changes, linkedid, started_at=queued_at or now, queue=queue, queued_at=queued_at,
                        department=self._queue_departments.get(str(queue)))
            changes.timeline.append(TimelineEntry(
                linkedid=linkedid, uniqueid=uniqueid, occurred_at=now, kind="queue.waiting",
                detail={"queue": queue, "position": _int(item.get("position")), "wait_seconds": wait},
                dedupe_key=dedupe_key("queue-resync", session, uniqueid, queue),
            ))
        return changes

    def close_lost_calls(self, open_calls: Iterable[Mapping[str, Any]], now: datetime) -> ChangeSet:
        """Calls the store still has open but that have no live channel after a
        resync ended while the bridge was away: mark them lost and register their
        recordings, whose files are complete now."""
        live_linkedids = {c.linkedid for c in self._channels.values()}
        changes = ChangeSet()
        for call in open_calls:
            linkedid = call["linkedid"]
            if linkedid in live_linkedids:
                continue
            self._facts(changes, linkedid, lost_at=now)
            changes.timeline.append(TimelineEntry(
                linkedid=linkedid, uniqueid=linkedid, occurred_at=now, kind="call.lost",
                detail={"reason": "ended while the bridge was disconnected"},
                dedupe_key=dedupe_key("lost", linkedid),
            ))
            if call.get("recording_path"):
                changes.recordings.append(RecordingFinished(linkedid, linkedid, call["recording_path"]))
        return changes


def _duration(value: Any) -> timedelta:
    """CoreShowChannel's Duration is HH:MM:SS."""
    try:
        hours, minutes, seconds = (int(p) for p in str(value).split(":"))
        return timedelta(hours=hours, minutes=minutes, seconds=seconds)
    except (TypeError, ValueError):
        return timedelta(0)

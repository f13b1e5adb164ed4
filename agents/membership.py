"""Queue membership as Asterisk reports it: who serves which queue, paused or
not and why, and the device state app_queue sees. Pure: events in, state out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ivr.ami.message import Event

# The events that change a member; QueueStatus's QueueMember items say the same.
MEMBER_EVENTS = ("QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "QueueMemberStatus",
                 "QueueMemberPenalty")


@dataclass(frozen=True)
class QueueMemberState:
    queue: str
    interface: str
    member_name: str | None
    paused: bool
    paused_reason: str | None
    status: int | None
    calls_taken: int | None
    removed: bool = False
    penalty: int | None = None
    in_call: bool = False
    last_pause: int | None = None     # epoch seconds of the last pause (0: never)


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def member_state(event: Event, removed: bool = False) -> QueueMemberState:
    """A queue member from a QueueMember* event or a QueueStatus list item
    (which says Name/Location where the events say MemberName/Interface)."""
    paused = str(event.get("paused", "0")).strip().lower() in ("1", "true", "yes")
    return QueueMemberState(
        queue=str(event.get("queue", "")),
        interface=str(event.get("interface") or event.get("location") or ""),
        member_name=event.get("membername") or event.get("name"),
        paused=paused,
        paused_reason=event.get("pausedreason") or None,
        status=_int(event.get("status")),
        calls_taken=_int(event.get("callstaken")),
        removed=removed,
        penalty=_int(event.get("penalty")),
        in_call=str(event.get("incall", "0")).strip() == "1",
        last_pause=_int(event.get("lastpause")),
    )

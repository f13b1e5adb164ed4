"""The queue panel: per queue, the callers waiting and for how long, and its
agents free / busy / paused / unavailable. Pure: events and times in.

Callers come and go with ``QueueCallerJoin`` / ``QueueCallerLeave`` /
``QueueCallerAbandon`` and are listed again (``QueueEntry``, with ``Wait``
seconds) by the QueueStatus after every login. Agents are counted from the
agent board's states, so the panel and the consoles never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from agents.board import AgentState, AgentStatus
from ivr.ami.message import Event, event_name
from ivr.calls.tracker import known

BUSY = frozenset({AgentStatus.RINGING, AgentStatus.IN_CALL, AgentStatus.WRAP_UP})


@dataclass(frozen=True)
class Waiting:
    uniqueid: str
    channel: str | None
    caller_number: str | None
    joined_at: datetime


@dataclass(frozen=True)
class QueueView:
    queue: str
    department: str | None
    name: str | None
    waiting: int
    oldest_joined_at: datetime | None
    free: int
    busy: int
    paused: int
    unavailable: int

    def longest_wait(self, at: datetime) -> int:
        """Seconds the longest-waiting caller has waited at ``at`` (0: nobody waits)."""
        if self.oldest_joined_at is None:
            return 0
        return max(0, int((at - self.oldest_joined_at).total_seconds()))

    def as_json(self, at: datetime) -> dict[str, Any]:
        return {"queue": self.queue, "department": self.department, "name": self.name,
                "waiting": self.waiting, "longest_wait_seconds": self.longest_wait(at),
                "oldest_joined_at": self.oldest_joined_at.astimezone(timezone.utc).isoformat()
                if self.oldest_joined_at else None,
                "agents": {"free": self.free, "busy": self.busy, "paused": self.paused,
                           "unavailable": self.unavailable}}


class QueuePanel:
    def __init__(self, queues: Sequence[tuple[str, str | None, str | None]]):
        """``queues``: (queue, department code, department name), in display order."""
        self._queues = {queue: (code, name) for queue, code, name in queues}
        self._waiting: dict[str, dict[str, Waiting]] = {queue: {} for queue in self._queues}

    def apply(self, event: Event, at: datetime) -> bool:
        """Follow one AMI event; True when the callers waiting changed."""
        name = event_name(event)
        queue, uniqueid = event.get("queue"), event.get("uniqueid")
        if name not in ("queuecallerjoin", "queuecallerleave", "queuecallerabandon") or not queue or not uniqueid:
            return False
        waiting = self._waiting.setdefault(str(queue), {})
        if name == "queuecallerjoin":
            waiting[uniqueid] = Waiting(uniqueid, event.get("channel"), known(event.get("calleridnum")), at)
            return True
        return waiting.pop(uniqueid, None) is not None

    def rebuild(self, entries: Iterable[Event], at: datetime) -> None:
        """QueueStatus's QueueEntry items are who waits now (joined ``Wait`` s ago)."""
        self._waiting = {queue: {} for queue in self._queues}
        for entry in entries:
            queue, uniqueid = entry.get("queue"), entry.get("uniqueid")
            if not queue or not uniqueid:
                continue
            try:
                waited = timedelta(seconds=int(str(entry.get("wait", "0")).strip()))
            except ValueError:
                waited = timedelta(0)
            self._waiting.setdefault(str(queue), {})[uniqueid] = Waiting(
                uniqueid, entry.get("channel"), known(entry.get("calleridnum")), at - waited)

    def view(self, agents: Iterable[AgentState]) -> list[QueueView]:
        counts: dict[str, dict[str, int]] = {}
        for agent in agents:
            for membership in agent.queues:
                if agent.status is AgentStatus.UNAVAILABLE:
                    kind = "unavailable"
                elif agent.status in BUSY:
                    kind = "busy"
                elif membership.paused:
                    kind = "paused"
                else:
                    kind = "free"
                tally = counts.setdefault(membership.queue, {"free": 0, "busy": 0, "paused": 0, "unavailable": 0})
                tally[kind] += 1
        names = list(self._queues) + sorted((set(self._waiting) | set(counts)) - set(self._queues))
        views = []
        for queue in names:
            code, name = self._queues.get(queue, (None, None))
            waiting = self._waiting.get(queue, {})
            tally = counts.get(queue, {"free": 0, "busy": 0, "paused": 0, "unavailable": 0})
            views.append(QueueView(queue=queue, department=code, name=name, waiting=len(waiting),
                                   oldest_joined_at=min((w.joined_at for w in waiting.values()), default=None),
                                   **tally))
        return views

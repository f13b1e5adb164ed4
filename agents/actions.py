"""The queue actions sent for an agent: QueueAdd, QueueRemove, QueuePause.

Each action's answer becomes a :class:`QueueResult`; nothing here raises. What
Asterisk answers is sorted into done, already so (``Unable to add interface:
Already there``, ``Unable to remove interface: Not there``: logging in or out
twice is fine) and failed (no such queue, ``Interface not found`` when pausing
an agent who is in no queue, no AMI connection, no answer in time), with
Asterisk's own message. The state the console shows is not taken from these
answers but from the events that follow them (QueueMemberAdded, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Mapping

from agents.seat import AgentSeat, SeatQueue
from hotline.logs import get_logger
from ivr.ami import AmiActionFailed, AmiConnection, AmiError

log = get_logger(__name__)

# app_queue.c's texts for "it is so already".
ALREADY = {"QueueAdd": "Already there", "QueueRemove": "Not there"}


class Outcome(str, Enum):
    DONE = "done"          # Asterisk did it
    ALREADY = "already"    # it was so already: nothing to do
    FAILED = "failed"


@dataclass(frozen=True)
class QueueResult:
    action: str
    queue: str | None      # None: every queue of the agent (QueuePause without Queue)
    outcome: Outcome
    message: str           # Asterisk's Message, or what went wrong before it answered

    def as_json(self) -> dict[str, Any]:
        return {"action": self.action, "queue": self.queue, "outcome": self.outcome.value,
                "message": self.message}


@dataclass(frozen=True)
class ActionReport:
    """What one console operation (login, logout, pause, unpause) did."""

    operation: str
    interface: str
    results: tuple[QueueResult, ...]
    error: str | None = None       # refused before anything was sent

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.outcome is not Outcome.FAILED for r in self.results)

    @property
    def failures(self) -> tuple[QueueResult, ...]:
        return tuple(r for r in self.results if r.outcome is Outcome.FAILED)

    def as_json(self) -> dict[str, Any]:
        return {"operation": self.operation, "interface": self.interface, "ok": self.ok,
                "error": self.error, "results": [r.as_json() for r in self.results]}


class QueueActions:
    def __init__(self, ami: Callable[[], AmiConnection | None], timeout: float | None = None):
        """``ami``: the core's connection (None in a web-only process)."""
        self._ami = ami
        self._timeout = timeout

    async def add(self, seat: AgentSeat, queue: SeatQueue, paused: bool, reason: str | None = None) -> QueueResult:
        action = {"Action": "QueueAdd", "Queue": queue.queue, "Interface": seat.interface,
                  "Penalty": str(queue.penalty), "Paused": "true" if paused else "false",
                  "MemberName": seat.name, "StateInterface": seat.interface}
        if paused and reason:
            action["Reason"] = reason     # QueueAdd's Reason: Asterisk 20 and later
        return await self._send(action)

    async def remove(self, interface: str, queue: str) -> QueueResult:
        return await self._send({"Action": "QueueRemove", "Queue": queue, "Interface": interface})

    async def pause(self, interface: str, paused: bool, reason: str | None = None) -> QueueResult:
        """Pause or unpause in every queue the interface is a member of."""
        action = {"Action": "QueuePause", "Interface": interface, "Paused": "true" if paused else "false"}
        if paused and reason:
            action["Reason"] = reason
        return await self._send(action)

    async def _send(self, action: Mapping[str, str]) -> QueueResult:
        name, queue = action["Action"], action.get("Queue")
        ami = self._ami()
        if ami is None:
            return self._failed(action, "no AMI connection in this process (web-only)")
        try:
            response = await ami.request(action, timeout=self._timeout)
        except AmiActionFailed as exc:
            if ALREADY.get(name, "\0") in exc.message:
                log.info("agents.queue_action_already", action=name, queue=queue,
                         interface=action["Interface"], message=exc.message)
                return QueueResult(name, queue, Outcome.ALREADY, exc.message)
            return self._failed(action, exc.message)
        except AmiError as exc:
            return self._failed(action, str(exc) or type(exc).__name__)
        message = response.get("Message", "") if not isinstance(response, list) else ""
        return QueueResult(name, queue, Outcome.DONE, str(message))

    @staticmethod
    def _failed(action: Mapping[str, str], message: str) -> QueueResult:
        log.error("agents.queue_action_failed", action=action["Action"], queue=action.get("Queue"),
                  interface=action.get("Interface"), message=message)
        return QueueResult(action["Action"], action.get("Queue"), Outcome.FAILED, message)

"""Who sits at a console: the agent as the queue side needs them.

The accounts model fills an :class:`AgentSeat` (account, name, extension and the
queues served with a penalty each); everything in agents/ that acts for an
agent takes one. Asterisk knows the agent only as the queue member
``PJSIP/<extension>``, named after the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from hotline.settings import Settings

TECH = "PJSIP/"


class SeatQueue(NamedTuple):
    """One queue the agent serves; a lower penalty is offered calls first
    (own department 0, ``general_queue`` as overflow with a higher one)."""

    queue: str
    penalty: int = 0


@dataclass(frozen=True)
class AgentSeat:
    account_id: int | None
    name: str
    extension: str
    queues: tuple[SeatQueue, ...]

    def __post_init__(self) -> None:
        # Plain (queue, penalty) pairs are accepted as the accounts model has them.
        object.__setattr__(self, "queues", tuple(SeatQueue(str(q), int(p)) for q, p in self.queues))

    @property
    def interface(self) -> str:
        """The queue member Asterisk dials (and reads the device state of)."""
        return interface_of(self.extension)

    @property
    def queue_names(self) -> tuple[str, ...]:
        return tuple(q.queue for q in self.queues)

    def problems(self, settings: Settings) -> list[str]:
        """What makes this seat unusable with these settings (empty: none)."""
        found = []
        extensions = {e for d in settings.departments for e in d.extensions}
        queues = {d.queue for d in settings.departments}
        if self.extension not in extensions:
            found.append(f"extension {self.extension!r} is not one of the departments' extensions")
        if not self.queues:
            found.append("the agent serves no queue")
        for queue in self.queue_names:
            if queue not in queues:
                found.append(f"queue {queue!r} is not a department's queue")
        if len(set(self.queue_names)) != len(self.queues):
            found.append("a queue is listed twice")
        if any(q.penalty < 0 for q in self.queues):
            found.append("a penalty is negative")
        if not self.name.strip():
            found.append("the agent has no name")
        return found


def interface_of(extension: str) -> str:
    return f"{TECH}{extension}"


def extension_of(interface: str) -> str:
    """``PJSIP/8006`` -> ``8006`` (an interface of another technology is kept whole)."""
    return interface[len(TECH):] if interface.startswith(TECH) else interface

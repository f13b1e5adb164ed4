"""The three kinds of step a replay script is made of."""

from __future__ import annotations

from dataclasses import dataclass, field

from .framing import get_header


@dataclass(frozen=True)
class Send:
    """Bytes Asterisk sent in one socket read; written with a single write()."""

    data: bytes
    t: float = 0.0
    pause_after: float = 0.0

    def __repr__(self) -> str:
        head = self.data[:60].decode("utf-8", errors="replace")
        return f"Send(t={self.t:.3f}, {len(self.data)} B, {head!r}...)"


@dataclass(frozen=True)
class Close:
    """Asterisk closed the socket (the client sees EOF)."""

    t: float = 0.0

    def __repr__(self) -> str:
        return f"Close(t={self.t:.3f})"


@dataclass(frozen=True)
class Expect:
    """A message the recorder sent; the replay waits for the client's equivalent."""

    message: dict = field(hash=False)
    raw: str = ""
    t: float = 0.0

    @property
    def action(self) -> str:
        """The recorded ``Action`` header."""
        return get_header(self.message, "Action")

    @property
    def action_id(self) -> str:
        """The recorded ``ActionID`` header ('' when absent)."""
        return get_header(self.message, "ActionID")

    @property
    def command(self) -> str:
        """The recorded AGI ``Command`` header ('' when absent)."""
        return get_header(self.message, "Command")

    @property
    def command_id(self) -> str:
        """The recorded AGI ``CommandID`` header ('' when absent)."""
        return get_header(self.message, "CommandID")

    def matches(self, client: dict) -> bool:
        """Same Action (case-insensitive) and, for ``Action: AGI``, the same Command."""
        action = get_header(client, "Action")
        if action.lower() != self.action.lower():
            return False
        if self.action.lower() == "agi":
            return get_header(client, "Command") == self.command
        return True

    def __repr__(self) -> str:
        text = f"Expect(Action: {self.action}"
        if self.command:
            text += f", Command: {self.command}"
        if self.action_id:
            text += f", recorded ActionID: {self.action_id}"
        return text + f", t={self.t:.3f})"


Step = Send | Close | Expect

"""What a call's AudioSocket session tells its owner, besides recognition
results (:mod:`asr.engine.results`): keys pressed and the end of the session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from asr.engine.results import Final, Partial, StreamFailed


@dataclass(frozen=True)
class Dtmf:
    """A key the caller pressed (Asterisk sends it when the key is released)."""

    digit: str
    received_at: float


@dataclass(frozen=True)
class Ended:
    """The AudioSocket connection is over; always the last event.

    ``reason``: ``eof`` (Asterisk closed the socket: the caller hung up or the app
    timed out), ``hangup_frame`` / ``error_frame`` (Asterisk sent one),
    ``protocol_error`` (bytes that are not AudioSocket; ``detail`` says what),
    ``closed`` / ``hung_up`` (the owner ended it: the call goes on in the
    dialplan), ``never_connected`` (the owner gave up waiting), ``shutdown``
    (the server stopped)."""

    reason: str
    detail: str = ""

    @property
    def caller_gone(self) -> bool:
        """True when the socket ended on Asterisk's side (probably a hangup)."""
        return self.reason in ("eof", "hangup_frame", "error_frame")


SessionEvent = Union[Partial, Final, StreamFailed, Dtmf, Ended]

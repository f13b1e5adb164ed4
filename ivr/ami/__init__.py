"""Our thin layer over panoramisk: framing, completion, timeouts, reconnects."""

from ivr.ami.connection import AmiConnection
from ivr.ami.errors import (
    AmiActionFailed,
    AmiActionTimeout,
    AmiConnectionLost,
    AmiError,
    AmiLoginFailed,
    AmiNotConnected,
)

__all__ = [
    "AmiConnection",
    "AmiActionFailed",
    "AmiActionTimeout",
    "AmiConnectionLost",
    "AmiError",
    "AmiLoginFailed",
    "AmiNotConnected",
]

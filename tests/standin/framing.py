"""AMI wire framing: splitting a byte stream into messages and parsing headers.

Asterisk ends every AMI message with an empty line (``\\r\\n\\r\\n``). The only
exception is the banner ``Asterisk Call Manager/11.0.0\\r\\n``, a single line
that opens each connection.
"""

from __future__ import annotations

import re

BANNER_PREFIX = b"Asterisk Call Manager/"
TERMINATOR = b"\r\n\r\n"
_CLIENT_END = re.compile(rb"\r?\n\r?\n")


def message_spans(stream: bytes) -> tuple[list[tuple[int, int]], int]:
    """Return ``(spans, rest_start)`` for a stream Asterisk sent.

    Each span is ``(start, end)`` of one complete message including its
    terminator; a leading banner line counts as one message. ``rest_start``
    is where the trailing incomplete message (if any) begins.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    if stream.startswith(BANNER_PREFIX):
        eol = stream.find(b"\r\n")
        if eol < 0:
            return spans, 0
        spans.append((0, eol + 2))
        pos = eol + 2
    while True:
        end = stream.find(TERMINATOR, pos)
        if end < 0:
            return spans, pos
        spans.append((pos, end + len(TERMINATOR)))
        pos = end + len(TERMINATOR)


def split_messages(stream: bytes) -> tuple[list[bytes], bytes]:
    """Split a stream Asterisk sent into complete messages and the remainder."""
    spans, rest = message_spans(stream)
    return [stream[s:e] for s, e in spans], stream[rest:]


def header_items(raw: str | bytes) -> list[tuple[str, str]]:
    """Parse one message into an ordered list of ``(key, value)`` pairs.

    Lines without a colon (the banner, garbage) are skipped. Duplicate keys
    are kept, in order.
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    items = []
    for line in re.split(r"\r?\n", raw):
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        items.append((key, value[1:] if value.startswith(" ") else value))
    return items


def parse_message(raw: str | bytes) -> dict[str, str]:
    """Parse one message into an ordered dict (first value wins, like astman_get_header)."""
    headers: dict[str, str] = {}
    for key, value in header_items(raw):
        headers.setdefault(key, value)
    return headers


def format_message(items: list[tuple[str, str]]) -> str:
    """Render ``(key, value)`` pairs as one AMI message with its terminator."""
    return "".join(f"{k}: {v}\r\n" for k, v in items) + "\r\n"


def get_header(headers: dict[str, str], name: str, default: str = "") -> str:
    """Case-insensitive header lookup, as Asterisk does it."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return default


def is_response(headers: dict[str, str]) -> bool:
    """True for an action response (``Response:`` without ``Event:``).

    ``OriginateResponse`` is an event that also carries ``Response:``.
    """
    return "Response" in headers and "Event" not in headers


def set_action_id(raw: str, action_id: str | None) -> str:
    """Replace every ``ActionID:`` header line of one or more messages.

    With ``action_id=None`` the lines are removed, as Asterisk omits the
    header when the action carried none.
    """
    if action_id is None:
        return re.sub(r"(?m)^ActionID: [^\r\n]*\r\n", "", raw)
    return re.sub(r"(?m)^(ActionID: )[^\r\n]*(\r\n)",
                  lambda m: m.group(1) + action_id + m.group(2), raw)


class ClientMessageSplitter:
    """Incremental splitter for what the client sends (``\\r\\n`` or ``\\n`` endings)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete messages (without the blank line)."""
        self._buffer += data
        messages = []
        while True:
            match = _CLIENT_END.search(self._buffer)
            if not match:
                return messages
            messages.append(self._buffer[:match.start()])
            self._buffer = self._buffer[match.end():]

"""Replace recorded ActionID / CommandID header values with the client's values.

Only whole header values are replaced (``ActionID: <recorded>\\r\\n``), never
substrings elsewhere. Asterisk spells the header ``CommandId`` in
AsyncAGIExec/AGIExec* events and the client sends ``CommandID``; both are
handled. A header line that a chunk boundary cuts in two is still replaced:
the boundary keeps its offset inside the line.
"""

from __future__ import annotations

import re

_HEADER = re.compile(rb"(?m)^(ActionID|CommandI[dD]): ([^\r\n]*)\r\n")


class IdTable:
    """Recorded id -> client id, per connection."""

    def __init__(self) -> None:
        self.action_ids: dict[str, str] = {}
        self.command_ids: dict[str, str] = {}

    def learn(self, recorded: dict, client: dict) -> None:
        """Record the mapping from a matched Expect to the client's message."""
        pairs = ((self.action_ids, "ActionID"), (self.command_ids, "CommandID"))
        for table, name in pairs:
            old = _value(recorded, name)
            new = _value(client, name)
            if old and new is not None:
                table[old] = new

    def lookup(self, header: str, value: str) -> str | None:
        """The client's value for a recorded header value, or None."""
        table = self.action_ids if header == "ActionID" else self.command_ids
        return table.get(value)


def _value(headers: dict, name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def substitute_chunks(chunks: list[bytes], table: IdTable) -> list[bytes]:
    """Apply ``table`` to consecutive chunks, keeping the chunk boundaries.

    The chunks are treated as one stream so that a header line split over
    two chunks is still recognised.
    """
    if not table.action_ids and not table.command_ids:
        return list(chunks)
    stream = b"".join(chunks)
    edits = []  # (start, end, replacement line)
    for match in _HEADER.finditer(stream):
        header = match.group(1).decode()
        new = table.lookup(header, match.group(2).decode("utf-8", errors="replace"))
        if new is not None:
            edits.append((match.start(), match.end(),
                          match.group(1) + b": " + new.encode("utf-8") + b"\r\n"))
    if not edits:
        return list(chunks)

    out = bytearray()
    mapping = []  # (old start, old end, new start, new length) for edited lines
    pos = 0
    for start, end, line in edits:
        out += stream[pos:start]
        mapping.append((start, end, len(out), len(line)))
        out += line
        pos = end
    out += stream[pos:]

    def new_offset(old: int) -> int:
        delta = 0
        for start, end, new_start, new_len in mapping:
            if old <= start:
                break
            if old < end:
                return new_start + max(1, min(old - start, new_len - 1))
            delta = new_start + new_len - end
        return old + delta

    result, old_pos, new_pos = [], 0, 0
    for chunk in chunks:
        old_pos += len(chunk)
        end = new_offset(old_pos) if old_pos < len(stream) else len(out)
        result.append(bytes(out[new_pos:end]))
        new_pos = end
    return result

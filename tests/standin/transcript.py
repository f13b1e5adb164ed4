"""Load a recorded ``*.jsonl`` capture and turn a connection into a Script."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .framing import TERMINATOR, parse_message
from .script import Script
from .steps import Close, Expect, Send, Step

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "asterisk"


def fixture_path(path: str | Path) -> Path:
    """Resolve a capture name such as ``"actions.jsonl"`` against the fixtures folder."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return FIXTURES / candidate


@dataclass(frozen=True)
class Chunk:
    """One recorded socket read or write."""

    t: float
    conn: int
    dir: str
    data: str
    eof: bool = False


class Transcript:
    """All chunks of one capture file."""

    def __init__(self, chunks: list[Chunk], path: Path | None = None) -> None:
        self.chunks = chunks
        self.path = path

    @classmethod
    def load(cls, path: str | Path) -> "Transcript":
        """Read a ``.jsonl`` capture (a bare file name is looked up in the fixtures)."""
        resolved = fixture_path(path)
        chunks = []
        with open(resolved, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    chunks.append(Chunk(row["t"], row["conn"], row["dir"], row["data"],
                                        bool(row.get("eof"))))
        return cls(chunks, resolved)

    @property
    def connections(self) -> list[int]:
        """The connection numbers present in the capture (1-based, as recorded)."""
        return sorted({c.conn for c in self.chunks})

    def in_bytes(self, conn: int) -> bytes:
        """Everything Asterisk sent on connection ``conn``, concatenated."""
        return b"".join(c.data.encode("utf-8") for c in self.chunks
                        if c.conn == conn and c.dir == "in")

    def out_messages(self, conn: int) -> list[str]:
        """Every message the recorder sent on connection ``conn``, as raw text."""
        return [step.raw for step in self.connection(conn) if isinstance(step, Expect)]

    def connection(self, conn: int) -> Script:
        """The replay script of connection ``conn`` (1-based, as recorded)."""
        steps: list[Step] = []
        out_buffer = ""
        for chunk in self.chunks:
            if chunk.conn != conn:
                continue
            if chunk.dir == "in":
                if chunk.eof:
                    steps.append(Close(t=chunk.t))
                elif chunk.data:
                    steps.append(Send(data=chunk.data.encode("utf-8"), t=chunk.t))
                continue
            out_buffer += chunk.data
            while TERMINATOR.decode() in out_buffer:
                raw, _, out_buffer = out_buffer.partition(TERMINATOR.decode())
                raw += TERMINATOR.decode()
                steps.append(Expect(message=parse_message(raw), raw=raw, t=chunk.t))
        if not steps:
            raise LookupError(f"connection {conn} not in {self.path} (has {self.connections})")
        return Script(steps)

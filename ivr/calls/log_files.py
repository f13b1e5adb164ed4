"""Reading an append-only file Asterisk writes (queue_log, Master.csv) from
where the last reading stopped, across rotations.

A :class:`Position` names a file by its device and inode, plus the hash of
its first line (a deleted file's inode can be given to a new one), and the
byte offset just after the last whole line read. The next reading:

* same file, grown: from the offset;
* same file, shorter than the offset or with another first line: it was
  truncated (logrotate ``copytruncate``) or replaced: from the start;
* another file at the path: the old one was rotated (Asterisk's ``logger
  rotate`` renames ``queue_log`` to ``queue_log.N``, logrotate to ``.1`` or
  ``-DATE``): the rest of the old file is found by its inode among the
  rotated siblings and read first, then the new file from the start.

Only whole lines are returned: a line Asterisk is still writing waits for the
next reading. Reading the same bytes twice is harmless (what is made of them
is deduplicated), so when in doubt a file is read again rather than skipped.

Blocking file I/O: call it from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

HEAD_BYTES = 4096          # the first line is hashed up to this many bytes
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")


@dataclass(frozen=True)
class Position:
    device: int
    inode: int
    head: str      # sha1 of the first line ("" while the file has none)
    offset: int    # bytes read: always just after a newline


@dataclass(frozen=True)
class Line:
    text: bytes            # without its newline
    path: str              # the file it was read from (a rotated one, perhaps)
    start: int             # its byte offset there
    after: Position        # where reading goes on once this line is taken


@dataclass
class Reading:
    lines: list[Line] = field(default_factory=list)
    position: Position | None = None     # after the last line (or the file as found)
    notes: list[str] = field(default_factory=list)   # rotated, truncated, ... (for the log)


def _hash(first_line: bytes) -> str:
    return hashlib.sha1(first_line[:HEAD_BYTES]).hexdigest()


def head_of(path: str | Path) -> str:
    """The sha1 of the file's first line (up to HEAD_BYTES), "" while it has
    no whole first line."""
    with open(path, "rb") as handle:
        first = handle.read(HEAD_BYTES)
    newline = first.find(b"\n")
    if newline < 0:
        return "" if len(first) < HEAD_BYTES else _hash(first)
    return _hash(first[:newline])


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _rotated(path: Path, device: int, inode: int) -> Path | None:
    """The file with that identity among ``path``'s rotated siblings."""
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return None
    for candidate in siblings:
        name = candidate.name
        if name == path.name or not name.startswith(path.name) or name.endswith(COMPRESSED):
            continue
        try:
            stat = candidate.stat()
        except OSError:
            continue
        if _identity(stat) == (device, inode):
            return candidate
    return None


def _read_lines(path: Path, device: int, inode: int, head: str, offset: int, budget: int,
                reading: Reading) -> bool:
    """Append the whole lines after ``offset``, about ``budget`` bytes of them;
    True when the end of the file was reached."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(budget)
    at_end = len(data) < budget
    if not data:
        return True
    lines = data.split(b"\n")
    if not at_end and len(lines) == 1:
        lines.append(b"")     # one line longer than the budget: taken as it is, in pieces
    lines.pop()               # after the last newline: a line still being written (or nothing)
    position = offset
    for text in lines:
        if not head and position == 0:
            head = _hash(text)
        start = position
        position = min(start + len(text) + 1, offset + len(data))
        reading.lines.append(Line(text, str(path), start, Position(device, inode, head, position)))
    if reading.lines:
        reading.position = reading.lines[-1].after
    return at_end


def read_new(path: str | Path, after: Position | None, budget: int = 1 << 20) -> Reading:
    """The whole lines written since ``after`` (None: from the start), about
    ``budget`` bytes of them; ``position`` says where the next reading starts."""
    path = Path(path)
    reading = Reading(position=after)
    try:
        stat = path.stat()
    except FileNotFoundError:
        reading.notes.append("missing")
        return reading
    device, inode = _identity(stat)
    if after is not None and (after.device, after.inode) != (device, inode):
        old = _rotated(path, after.device, after.inode)
        if old is None:
            reading.notes.append("rotated; the old file is gone: what was written to it after the last"
                                 " reading is not read")
        elif after.head and head_of(old) != after.head:
            reading.notes.append(f"rotated; {old.name} has the old inode but another first line: not read")
        else:
            reading.notes.append(f"rotated to {old.name}: its rest is read first")
            if not _read_lines(old, after.device, after.inode, after.head, after.offset, budget, reading):
                return reading            # more of the old file than one reading takes
            budget = max(budget - sum(len(line.text) + 1 for line in reading.lines), 1 << 16)
        after = None
    offset, head = 0, ""
    if after is not None:
        if stat.st_size < after.offset:
            reading.notes.append(f"truncated to {stat.st_size} bytes (read up to {after.offset} before):"
                                 " read again from the start")
        elif after.head and head_of(path) != after.head:
            reading.notes.append("replaced by a file with another first line: read from its start")
        else:
            offset, head = after.offset, after.head
    from_old_file = len(reading.lines)
    if stat.st_size > offset:
        _read_lines(path, device, inode, head, offset, budget, reading)
    if len(reading.lines) == from_old_file:
        reading.position = Position(device, inode, head, offset)
    return reading

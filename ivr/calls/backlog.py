"""What the call writer keeps while PostgreSQL cannot take its rows.

Changes are encoded as JSON that decodes to the very same objects (datetimes,
dataclasses such as a feature's sink rows, decimals), so the same text serves
the spill files and the dead-letter table.

A spill file is an append-only JSONL segment in ``[calls] spill_dir``: one line
per submission (``{"seq": n, "changes": ...}``), written while the in-memory
backlog is full and read back, in order, once PostgreSQL takes rows again.
While a process writes a segment it holds an exclusive ``flock`` on it; a
segment nobody holds (left by a process that stopped during an outage) is
adopted by the next writer that starts with the same ``spill_dir`` and written
before anything new. Segments are read in the order of their names
(``spill-<nanoseconds>-<pid>.jsonl``) and deleted once every row is committed.
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib
import json
import os
import shutil
import time
from collections import deque
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hotline.facts import CallFacts, ChangeSet, RecordingFinished, TimelineEntry
from hotline.logs import get_logger

log = get_logger(__name__)

SEGMENT_GLOB = "spill-*.jsonl"


# -- the codec ---------------------------------------------------------------------------

def _tag(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"$dc": f"{cls.__module__}:{cls.__qualname__}",
                "f": {f.name: _tag(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {"$map": [[_tag(k), _tag(v)] for k, v in value.items()]} if any(
            not isinstance(k, str) or k.startswith("$") for k in value) else {k: _tag(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tag(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return {"$str": str(value)}   # what the database would have been sent through default=str


def _class(name: str) -> type:
    module, _, qualname = name.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and dataclasses.is_dataclass(target)):
        raise ValueError(f"{name} is not a dataclass")
    return target


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, inner), = value.items()
        if key == "$dt":
            return datetime.fromisoformat(inner)
        if key == "$date":
            return date.fromisoformat(inner)
        if key == "$dec":
            return Decimal(inner)
        if key == "$str":
            return inner
        if key == "$map":
            return {_untag(k): _untag(v) for k, v in inner}
    if set(value) == {"$dc", "f"}:
        cls = _class(value["$dc"])
        fields = {k: _untag(v) for k, v in value["f"].items()}
        # Tuples were lists in JSON; dataclasses of this project hold tuples, never lists.
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    return {k: _untag(v) for k, v in value.items()}


def encode(value: Any) -> str:
    """JSON text that :func:`decode` turns back into ``value``; never fails, and
    always storable in a PostgreSQL text column (no NUL byte, valid UTF-8)."""
    text = json.dumps(_tag(value), ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:   # a lone surrogate: keep it, escaped
        text = json.dumps(_tag(value), ensure_ascii=True, separators=(",", ":"))
    return text


def decode(text: str) -> Any:
    return _untag(json.loads(text))


def changes_to_json(changes: ChangeSet) -> dict[str, Any]:
    return {"calls": [[c.linkedid, dict(c.fields)] for c in changes.calls],
            "timeline": [[t.linkedid, t.uniqueid, t.occurred_at, t.kind, dict(t.detail), t.dedupe_key]
                         for t in changes.timeline],
            "recordings": [[r.linkedid, r.uniqueid, r.asterisk_path] for r in changes.recordings],
            "rows": {name: list(rows) for name, rows in changes.rows.items() if rows}}


def changes_from_json(data: dict[str, Any]) -> ChangeSet:
    return ChangeSet(
        calls=[CallFacts(linkedid, fields) for linkedid, fields in data.get("calls", [])],
        timeline=[TimelineEntry(*row) for row in data.get("timeline", [])],
        recordings=[RecordingFinished(*row) for row in data.get("recordings", [])],
        rows={name: list(rows) for name, rows in data.get("rows", {}).items()},
    )


def encode_changes(changes: ChangeSet) -> str:
    return encode(changes_to_json(changes))


def decode_changes(text: str) -> ChangeSet:
    return changes_from_json(decode(text))


# -- spill segments ----------------------------------------------------------------------

class SpillSegment:
    """One append-only file of submissions, read back from the front.

    The event loop appends lines (``append``, buffered; ``sync`` hands them to
    the OS); a worker thread reads them back in chunks (``read``, on a handle
    of its own), and ``consume`` moves past a chunk once it is committed. An
    append the disk refuses is kept in memory after the file's lines, so the
    order holds and nothing is dropped (logged once)."""

    def __init__(self, path: Path, lock: Any, *, ours: bool, rows: int = 0, lines: int = 0):
        self.path = path
        self._lock = lock                   # the append handle; holds the flock
        self._reader = open(path, "rb")
        self.ours = ours                    # appended to by this process (else adopted)
        self.rows = rows                    # rows not yet consumed
        self._file_lines = lines            # lines in the file not yet consumed
        self._read_at = 0                   # offset of the first line not consumed
        self._tail: deque[tuple[int, ChangeSet]] = deque()   # appends the disk refused
        self._taken: tuple[int, int, int, int] | None = None   # offset after, lines, rows, tail items
        self.failed: OSError | None = None

    @classmethod
    def create(cls, directory: Path, order_ns: int | None = None) -> "SpillSegment":
        directory.mkdir(parents=True, exist_ok=True)
        order = time.time_ns() if order_ns is None else order_ns
        path = directory / f"spill-{order:020d}-{os.getpid()}.jsonl"
        handle = open(path, "ab", buffering=1 << 20)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise
        return cls(path, handle, ours=True)

    @classmethod
    def adopt_orphans(cls, directory: Path) -> list["SpillSegment"]:
        """Segments in ``directory`` that no running process holds, oldest first
        (blocking: reads them to count their rows)."""
        if not directory.is_dir():
            return []
        adopted = []
        for path in sorted(directory.glob(SEGMENT_GLOB)):
            handle = open(path, "ab")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()                  # a running process is writing it
                continue
            rows = lines = good = 0
            with open(path, "rb") as reader:
                for line in reader:
                    if not line.endswith(b"\n"):
                        break
                    lines += 1
                    good += len(line)
                    rows += int(json.loads(line).get("rows", 0))
            if good < path.stat().st_size:   # a last line cut short by a crash: kept aside, not read
                torn = path.with_name(path.name + ".torn")
                with open(path, "rb") as reader:
                    reader.seek(good)
                    torn.write_bytes(reader.read())
                os.truncate(path, good)
                log.error("writer.spill_torn_line", path=str(path), kept_in=str(torn))
            adopted.append(cls(path, handle, ours=False, rows=rows, lines=lines))
        return adopted

    def append(self, seq: int, changes: ChangeSet) -> None:
        self.rows += len(changes)
        if self.failed is None and not self._tail:
            line = encode({"seq": seq, "rows": len(changes), "changes": changes_to_json(changes)})
            try:
                self._lock.write(line.encode("utf-8") + b"\n")
                self._file_lines += 1
                return
            except OSError as exc:
                self._failed(exc)
        self._tail.append((seq, changes))

    def _failed(self, exc: OSError) -> None:
        if self.failed is None:
            self.failed = exc
            log.error("writer.spill_write_failed", path=str(self.path), error=repr(exc),
                      detail="later changes stay in memory, after the file's")

    def sync(self) -> None:
        """Hand buffered lines to the OS (a crash of this process then loses none)."""
        if self.failed is None:
            try:
                self._lock.flush()
            except OSError as exc:
                self._failed(exc)

    @property
    def exhausted(self) -> bool:
        return self._file_lines == 0 and not self._tail

    def read(self, max_rows: int) -> list[tuple[int, ChangeSet]]:
        """The next submissions (at least one, about ``max_rows`` rows), without
        consuming them. Blocking: call ``sync`` first, then run it in a thread."""
        out: list[tuple[int, ChangeSet]] = []
        rows = 0
        self._reader.seek(self._read_at)
        offset, from_file = self._read_at, 0
        while from_file < self._file_lines and (not out or rows < max_rows):
            line = self._reader.readline()
            if not line.endswith(b"\n"):
                break                            # not handed to the OS yet
            offset += len(line)
            from_file += 1
            out.append(_line_changes(line))
            rows += len(out[-1][1])
        file_rows, from_tail = rows, 0
        if from_file == self._file_lines:
            for item in list(self._tail):
                if out and rows >= max_rows:
                    break
                out.append(item)
                rows += len(item[1])
                from_tail += 1
        self._taken = (offset, from_file, file_rows, from_tail)
        return out

    def consume(self) -> None:
        """What the last ``read`` returned is committed."""
        assert self._taken is not None, "read() first"
        offset, from_file, file_rows, from_tail = self._taken
        self._taken = None
        self._read_at = offset
        self._file_lines -= from_file
        self.rows -= file_rows
        for _ in range(from_tail):
            self.rows -= len(self._tail.popleft()[1])

    def remaining(self) -> list[tuple[int, ChangeSet]]:
        """Every submission not yet consumed (blocking; for handing over at close)."""
        self.sync()
        self._reader.seek(self._read_at)
        out = [_line_changes(line) for line in self._reader if line.endswith(b"\n")]
        return out + list(self._tail)

    def order_ns(self) -> int:
        try:
            return int(self.path.name.split("-")[1])
        except (IndexError, ValueError):
            return time.time_ns()

    def close(self, *, delete: bool) -> None:
        """Delete the file, or keep what is not consumed yet for the next writer
        (the consumed lines are cut off, so nothing is written twice)."""
        try:
            if delete:
                self.path.unlink(missing_ok=True)
            else:
                self.sync()
                if self._read_at and self.failed is None:
                    rest = self.path.with_name(self.path.name + ".rest")
                    with open(rest, "wb") as out:
                        self._reader.seek(self._read_at)
                        shutil.copyfileobj(self._reader, out)
                    os.replace(rest, self.path)
                if self._tail:
                    with open(self.path, "ab") as out:   # the disk may take them now
                        for seq, changes in self._tail:
                            out.write(encode({"seq": seq, "rows": len(changes),
                                              "changes": changes_to_json(changes)}).encode("utf-8") + b"\n")
        except OSError as exc:
            log.error("writer.spill_close_failed", path=str(self.path), error=repr(exc),
                      rows_in_memory=[encode_changes(c) for _, c in self._tail])
        finally:
            self._reader.close()
            self._lock.close()     # releases the flock: the next process may adopt the file


def _line_changes(line: bytes) -> tuple[int, ChangeSet]:
    record = decode(line.decode("utf-8"))
    return int(record["seq"]), changes_from_json(record["changes"])

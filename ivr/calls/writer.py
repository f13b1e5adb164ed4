"""Batches the tracker's changes into few, large transactions, and loses none.

One round trip per AMI event cannot keep up with a busy PBX; here changes
collect for ``flush_interval`` seconds (or until ``flush_max_rows``) and go to
PostgreSQL in one transaction of set-based statements, on connections of the
writer's own (the HTTP API cannot take them).

When PostgreSQL cannot take a batch:

* a rejected *row* (a data or constraint error: a number out of range, a
  violated check, a value the column cannot hold) must not stop the rows
  around it: the batch is written again in halves until the offending rows
  are found; only those go to the ``write_dead_letters`` table, with the
  error, and can be replayed from there (:mod:`ivr.calls.dead_letters`);
* any other error (PostgreSQL away or restarting, read-only after a failover,
  too many connections, a serialization failure, ...) is retried with back-off
  (``retry_min`` doubling to ``retry_max``, so writing resumes within about
  ``retry_max`` of PostgreSQL coming back) on a fresh connection: a session
  opened while the database was read-only stays read-only.

Meanwhile submissions keep arriving and are never refused (the AMI reader must
not wait: Asterisk drops a manager client that does not read). Up to
``max_backlog`` rows wait in memory; past that, new submissions are appended
to a spill file in ``spill_dir`` (:mod:`ivr.calls.backlog`) and read back in
order once the memory backlog is written. At close, what could not be written
goes to a spill file too, which the next start adopts.

After each commit the batch goes to the publisher (the event hub): its new
timeline rows are also sent with ``NOTIFY`` inside the same transaction, so
other processes hear of exactly the rows that committed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol, Sequence

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base

from hotline.facts import CallFacts, ChangeSet, Committed, RecordingFinished, TimelineEntry
from hotline.hub import NOTIFY_CHANNEL
from hotline.logs import get_logger
from hotline.tasks import cancel_and_wait
from hotline.settings import CallSettings
from ivr.calls import store
from ivr.calls.backlog import SpillSegment, encode_changes

log = get_logger(__name__)

# Errors no retry can fix: the data of some row. They are looked for row by row.
ROW_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg_base.DataError,                       # refused by asyncpg before sending (int4 range, ...)
    asyncpg.DataError,                            # class 22: out of range, bad text, NUL, ...
    asyncpg.IntegrityConstraintViolationError,    # class 23: check, foreign key, not null, unique
    asyncpg.exceptions.ProgramLimitExceededError,  # class 54: e.g. a value too large for an index
    ValueError,                                   # refused before it was sent (unknown call field, ...)
    TypeError,
)
STILL_FAILING_LOG_EVERY = 10.0   # seconds between log lines while writes keep failing

Sink = Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[Any]]
Submission = tuple[int, ChangeSet]     # (sequence number, what was submitted)


class UnknownSink(ValueError):
    """Rows for a sink nobody registered (e.g. read from another process's spill file)."""


def is_row_error(exc: BaseException) -> bool:
    """True for an error that some row's data causes, whenever it is written;
    False for everything a retry may fix (connections, server state, timeouts)."""
    if isinstance(exc, asyncpg_base.DataError):
        return True
    if isinstance(exc, asyncpg.InterfaceError):   # the connection's state, not the data
        return False
    return isinstance(exc, ROW_ERRORS)


class Publisher(Protocol):
    """Who hears of committed batches (:class:`hotline.hub.EventHub`)."""

    origin: str

    def encode(self, timeline: Sequence[TimelineEntry]) -> list[str]: ...

    def publish(self, committed: Committed, messages: Sequence[str] | None = None) -> None: ...


class CallWriter:
    def __init__(self, settings: CallSettings, publisher: Publisher | None = None, *,
                 connect_timeout: float = 5.0):
        self._pool: asyncpg.Pool | None = None
        self._settings = settings
        self._publisher = publisher
        self._connect_timeout = connect_timeout
        self._namespace = ""
        self._memory: deque[Submission] = deque()     # oldest first
        self._memory_rows = 0
        self._spills: deque[SpillSegment] = deque()   # after the memory backlog, oldest first
        self._inflight: deque[ChangeSet] = deque()    # the batch being written, in pieces
        self._inflight_from_spill = False             # (then the spill file still holds it)
        self._inflight_rows = 0
        self._submitted = 0
        self._committed = 0
        self._has_data = asyncio.Event()
        self._full = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._sinks: dict[str, Sink] = {}
        self._failing_since: float | None = None
        self._logged_failure_at = 0.0
        self._failure_kind = ""
        self.last_error: str | None = None
        self.batches = 0
        self.rows_written = 0
        self.dead_lettered = 0
        self.spilled_total = 0
        self.failed_attempts = 0

    # -- what the rest of the service uses --------------------------------------------------

    def add_sink(self, name: str, write: "Sink") -> None:
        """Let a feature's rows (``ChangeSet.rows[name]``) be written in the same
        transaction as the call facts, after them, in submission order. Rows
        must be plain data (a dataclass of JSON-able fields, datetimes, ...):
        they may be spilled to disk and read back."""
        self._sinks[name] = write

    def start(self, pool: asyncpg.Pool, namespace: str = "") -> None:
        """Write on ``pool``'s connections from now on. ``namespace``: the
        database's name in ``spill_dir`` (a subfolder), so a spill is only ever
        read back into the database it was meant for. Spill files a stopped
        writer left there are adopted first: they are older than anything
        submitted from now on, and written before it."""
        self._pool = pool
        self._namespace = "".join(c if c.isalnum() or c in "-_." else "_" for c in namespace).lstrip(".")
        if self._task is None:
            self._adopt_orphans()
            self._task = asyncio.create_task(self._run(), name="call-writer")

    def submit(self, changes: ChangeSet) -> None:
        """Queue changes; never blocks the AMI reader, never refuses."""
        if not changes:
            return
        self._submitted += 1
        rows = len(changes)
        if self._spills or self.backlog + rows > self._settings.max_backlog:
            if self._spill(self._submitted, changes):
                self._has_data.set()
                return
        self._memory.append((self._submitted, changes))
        self._memory_rows += rows
        self._has_data.set()
        if self._memory_rows >= self._settings.flush_max_rows:
            self._full.set()

    @property
    def backlog(self) -> int:
        """Rows submitted and not yet committed, in memory (the batch being written included)."""
        return self._memory_rows + self._inflight_rows

    @property
    def spilled(self) -> int:
        """Rows waiting in spill files."""
        return sum(s.rows for s in self._spills)

    @property
    def failing(self) -> bool:
        """The last write attempt failed (and writing has not succeeded since)."""
        return self._failing_since is not None

    def status(self) -> dict[str, Any]:
        return {
            "backlog_rows": self.backlog,
            "spilled_rows": self.spilled,
            "spill_files": [str(s.path) for s in self._spills],
            "failing_for_seconds": (round(time.monotonic() - self._failing_since, 1)
                                    if self._failing_since is not None else None),
            "last_error": self.last_error,
            "dead_lettered": self.dead_lettered,
        }

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once everything submitted so far is committed (or dead-lettered)."""
        target = self._submitted
        self._full.set()
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self._committed >= target), timeout)

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is waiting (for up to ``timeout``); whatever PostgreSQL
        still cannot take is left in a spill file for the next start."""
        if self._task is None:
            return
        if self._submitted > self._committed or self._spills:
            try:
                await self.flush(timeout)
            except asyncio.TimeoutError:
                pass
        await cancel_and_wait(self._task)
        self._task = None
        self._hand_over()

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_started = float("-inf")
        while True:
            await self._has_data.wait()
            # Group commit on a cadence: a batch starts flush_interval after the previous
            # one started, not after it ended, so what arrived during a slow commit does
            # not wait a whole interval more (and an idle writer commits at once).
            wait = self._settings.flush_interval - (loop.time() - last_started)
            if wait > 0 and self._memory_rows < self._settings.flush_max_rows and not self._spills:
                try:
                    await asyncio.wait_for(self._full.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            self._full.clear()
            last_started = loop.time()
            if self._memory:
                taken = self._take_memory()
                self._inflight_from_spill = False
                await self._commit(taken)
            elif self._spills:
                spill = self._spills[0]
                spill.sync()
                taken = await asyncio.to_thread(spill.read, self._settings.flush_max_rows)
                self._inflight_rows = sum(len(c) for _, c in taken)
                self._inflight_from_spill = True
                if taken:
                    await self._commit(taken)
                else:
                    await asyncio.sleep(self._settings.flush_interval)   # nothing whole on disk yet
                spill.consume()
                if spill.exhausted:
                    self._spills.popleft()
                    spill.close(delete=True)
                    log.info("writer.spill_drained", path=str(spill.path), spills_left=len(self._spills))
            if not self._memory and not self._spills:
                self._has_data.clear()

    def _take_memory(self) -> list[Submission]:
        taken: list[Submission] = []
        rows = 0
        while self._memory and (not taken or rows + len(self._memory[0][1]) <= self._settings.flush_max_rows):
            item = self._memory.popleft()
            taken.append(item)
            rows += len(item[1])
        self._memory_rows -= rows
        self._inflight_rows = rows
        return taken

    async def _commit(self, taken: list[Submission]) -> None:
        """Write these submissions; returns once every row is committed or
        dead-lettered. Only cancellation interrupts it (``_inflight`` then
        holds what is not written yet)."""
        batch = ChangeSet()
        for _, changes in taken:
            batch.extend(changes)
        self._inflight = deque([batch])
        delay = self._settings.retry_min
        while self._inflight:
            piece = self._inflight[0]
            try:
                await self._write(piece)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_row_error(exc):
                    rows = _units(piece)
                    if len(rows) > 1:
                        if piece is batch:
                            log.warning("writer.batch_rejected", rows=len(rows), error=repr(exc),
                                        detail="written again in parts to find the rejected rows")
                        half = len(rows) // 2
                        self._inflight.popleft()
                        self._inflight.extendleft([_merge(rows[half:]), _merge(rows[:half])])
                        continue
                    try:
                        await self._dead_letter(piece, exc)
                    except asyncio.CancelledError:
                        raise
                    except Exception as dl_exc:
                        if is_row_error(dl_exc):   # not even storable as text: the log keeps it
                            log.critical("writer.row_unstorable", error=repr(exc), dead_letter_error=repr(dl_exc),
                                         payload=encode_changes(piece))
                        else:
                            delay = await self._failed(dl_exc, delay)
                            continue
                else:
                    delay = await self._failed(exc, delay)
                    continue
            self._succeeded()
            delay = self._settings.retry_min
            self._inflight.popleft()
            self._inflight_rows = max(0, self._inflight_rows - len(piece))
        self._inflight_rows = 0
        async with self._progress:
            self._committed = max(self._committed, max(seq for seq, _ in taken))
            self._progress.notify_all()

    async def _failed(self, exc: BaseException, delay: float) -> float:
        """Log (not every time), wait, and return the next back-off."""
        now = time.monotonic()
        self.failed_attempts += 1
        self.last_error = repr(exc)
        if self._failing_since is None:
            self._failing_since = now
            self._logged_failure_at = now
            log.error("writer.retrying", error=repr(exc), waiting=self.backlog, spilled=self.spilled,
                      retry_in=delay)
        elif now - self._logged_failure_at >= STILL_FAILING_LOG_EVERY or type(exc).__name__ != self._failure_kind:
            self._logged_failure_at = now
            log.error("writer.still_failing", error=repr(exc), failing_for=round(now - self._failing_since, 1),
                      attempts=self.failed_attempts, waiting=self.backlog, spilled=self.spilled)
        self._failure_kind = type(exc).__name__
        await asyncio.sleep(delay)
        return min(delay * 2, self._settings.retry_max)

    def _succeeded(self) -> None:
        if self._failing_since is not None:
            log.warning("writer.resumed", failed_for=round(time.monotonic() - self._failing_since, 2),
                        attempts=self.failed_attempts, waiting=self.backlog, spilled=self.spilled)
            self._failing_since = None
            self.last_error = None

    async def _write(self, batch: ChangeSet) -> None:
        assert self._pool is not None, "CallWriter.start(pool) first"
        unknown = set(batch.rows) - set(self._sinks)
        if any(batch.rows[name] for name in unknown):
            raise UnknownSink(f"no sink registered for {sorted(unknown)}")
        # Every timeline row needs its call row; a row-less call gets one here.
        calls = batch.calls + [CallFacts(linkedid, {}) for linkedid in {t.linkedid for t in batch.timeline}]
        messages: list[str] = []
        async with self._pool.acquire(timeout=self._connect_timeout) as conn:
            try:
                async with conn.transaction():
                    await store.write_calls(conn, calls)
                    inserted = await store.write_timeline(conn, batch.timeline)
                    new = [t for t in batch.timeline if t.dedupe_key in inserted]
                    for name, rows in batch.rows.items():
                        if rows:
                            await self._sinks[name](conn, rows)
                    if self._publisher is not None and new:
                        messages = self._publisher.encode(new)
                        await conn.execute("SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m",
                                           NOTIFY_CHANNEL, messages)
            except BaseException as exc:
                if not is_row_error(exc):
                    # Read-only after a failover, half-closed, cancelled mid-write: the next
                    # attempt gets a new session (one opened read-only stays read-only).
                    conn.terminate()
                raise
        self.batches += 1
        self.rows_written += len(new)
        if self._publisher is not None:
            self._publisher.publish(Committed(
                timeline=new, committed_at=time.time(), origin=self._publisher.origin,
                calls=batch.calls, recordings=batch.recordings, rows=batch.rows), messages)

    async def _dead_letter(self, row: ChangeSet, exc: BaseException) -> None:
        kind, sink, linkedid = _describe(row)
        assert self._pool is not None
        async with self._pool.acquire(timeout=self._connect_timeout) as conn:
            try:
                await store.write_dead_letter(conn, kind=kind, sink=sink, linkedid=_text(linkedid),
                                              payload=encode_changes(row), error=_text(str(exc) or repr(exc)),
                                              error_class=type(exc).__name__,
                                              sqlstate=exc.sqlstate if isinstance(exc, asyncpg.PostgresError)
                                              else None)
            except BaseException as dl_exc:
                if not is_row_error(dl_exc):
                    conn.terminate()
                raise
        self.dead_lettered += 1
        log.error("writer.row_dead_lettered", kind=kind, sink=sink, call_id=linkedid,
                  error=repr(exc), table="write_dead_letters")

    # -- spilling ----------------------------------------------------------------------------

    def _spill_dir(self) -> Path:
        base = Path(self._settings.spill_dir)
        return base / self._namespace if self._namespace else base

    def _spill(self, seq: int, changes: ChangeSet) -> bool:
        """Append to the newest spill segment (made on first need); False: no
        spill file could be made, keep the changes in memory."""
        if not self._spills:
            try:
                segment = SpillSegment.create(self._spill_dir())
            except OSError as exc:
                log.error("writer.spill_unavailable", spill_dir=str(self._spill_dir()), error=repr(exc),
                          backlog=self._memory_rows, detail="kept in memory")
                return False
            self._spills.append(segment)
            log.warning("writer.spilling", path=str(segment.path), backlog=self._memory_rows,
                        max_backlog=self._settings.max_backlog)
        segment = self._spills[-1]
        segment.append(seq, changes)
        self.spilled_total += len(changes)
        self._full.set()
        return True

    def _adopt_orphans(self) -> None:
        try:
            orphans = SpillSegment.adopt_orphans(self._spill_dir())
        except (OSError, ValueError) as exc:
            log.error("writer.spill_unreadable", spill_dir=str(self._spill_dir()), error=repr(exc))
            return
        for segment in orphans:
            log.warning("writer.spill_adopted", path=str(segment.path), rows=segment.rows)
        if orphans:
            # Older than anything submitted since start: written first.
            self._spills.extendleft(reversed(orphans))
            self._has_data.set()

    def _hand_over(self) -> None:
        """At close: what is not committed goes to a segment named before any
        still waiting, so the next start writes it first, in order."""
        leftover: list[Submission] = [] if self._inflight_from_spill else [(0, p) for p in self._inflight]
        leftover.extend(self._memory)
        rows = sum(len(c) for _, c in leftover)
        order = min((s.order_ns() for s in self._spills), default=None)
        if leftover:
            try:
                segment = SpillSegment.create(self._spill_dir(), None if order is None else order - 1)
                for seq, changes in leftover:
                    segment.append(seq, changes)
                segment.close(delete=False)
                log.error("writer.closed_with_backlog", rows=rows, spilled_to=str(segment.path),
                          detail="written when a writer next starts with this spill_dir")
            except OSError as exc:
                log.error("writer.closed_with_backlog", rows=rows, error=repr(exc),
                          detail="could not be spilled: rows logged here for recovery",
                          changes=[encode_changes(c) for _, c in leftover])
        for segment in self._spills:
            segment.close(delete=segment.exhausted)
            if not segment.exhausted:
                log.error("writer.closed_with_spill", path=str(segment.path), rows=segment.rows)
        self._spills.clear()
        self._memory.clear()
        self._inflight.clear()
        self._memory_rows = self._inflight_rows = 0


def _text(value: str | None) -> str | None:
    """A string PostgreSQL's text type accepts (no NUL, valid UTF-8), readably escaped."""
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _units(batch: ChangeSet) -> list[ChangeSet]:
    """The batch as one-row change sets, in the order a transaction writes them."""
    units = [ChangeSet(calls=[c]) for c in batch.calls]
    units += [ChangeSet(timeline=[t]) for t in batch.timeline]
    units += [ChangeSet(recordings=[r]) for r in batch.recordings]
    units += [ChangeSet(rows={name: [row]}) for name, rows in batch.rows.items() for row in rows]
    return units


def _merge(units: list[ChangeSet]) -> ChangeSet:
    merged = ChangeSet()
    for unit in units:
        merged.extend(unit)
    return merged


def _describe(row: ChangeSet) -> tuple[str, str | None, str | None]:
    """(kind, sink, linkedid) of a one-row change set."""
    if row.calls:
        return "call", None, row.calls[0].linkedid
    if row.timeline:
        return "timeline", None, row.timeline[0].linkedid
    if row.recordings:
        return "recording", None, row.recordings[0].linkedid
    for name, rows in row.rows.items():
        if rows:
            linkedid = getattr(rows[0], "linkedid", None)
            return "sink", name, linkedid if isinstance(linkedid, str) else None
    return "empty", None, None


__all__ = ["CallWriter", "ROW_ERRORS", "RecordingFinished", "UnknownSink", "is_row_error"]

"""Batches the tracker's changes into few, large transactions.

One round trip per AMI event cannot keep up with a busy PBX; here changes
collect for ``flush_interval`` seconds (or until ``flush_max_rows``) and go to
PostgreSQL in one transaction of set-based statements. If PostgreSQL is away,
the batch is kept and retried with back-off: nothing is dropped, and the log
says how much is waiting.

After each commit the batch goes to the publisher (the event hub): its new
timeline rows are also sent with ``NOTIFY`` inside the same transaction, so
other processes hear of exactly the rows that committed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Protocol, Sequence

import asyncpg

from hotline.logs import get_logger
from hotline.settings import CallSettings
from ivr.calls import store
from hotline.facts import CallFacts, ChangeSet, Committed, TimelineEntry
from hotline.hub import NOTIFY_CHANNEL

log = get_logger(__name__)

# Errors after which the same batch can succeed later (PostgreSQL away or restarting).
_TRANSIENT = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)

Sink = Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[Any]]


class Publisher(Protocol):
    """Who hears of committed batches (:class:`hotline.hub.EventHub`)."""

    origin: str

    def encode(self, timeline: Sequence[TimelineEntry]) -> list[str]: ...

    def publish(self, committed: Committed, messages: Sequence[str] | None = None) -> None: ...


class CallWriter:
    def __init__(self, settings: CallSettings, publisher: Publisher | None = None):
        self._pool: asyncpg.Pool | None = None
        self._settings = settings
        self._publisher = publisher
        self._pending = ChangeSet()
        self._submitted = 0
        self._committed = 0
        self._has_data = asyncio.Event()
        self._full = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._sinks: dict[str, Sink] = {}
        self.batches = 0
        self.rows_written = 0

    def add_sink(self, name: str, write: "Sink") -> None:
        """Let a feature's rows (``ChangeSet.rows[name]``) be written in the same
        transaction as the call facts, after them, in submission order."""
        self._sinks[name] = write

    def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="call-writer")

    def submit(self, changes: ChangeSet) -> None:
        """Queue changes; never blocks the AMI reader."""
        if not changes:
            return
        self._pending.extend(changes)
        self._submitted += 1
        self._has_data.set()
        if len(self._pending) >= self._settings.flush_max_rows:
            self._full.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once everything submitted so far is committed."""
        target = self._submitted
        self._full.set()
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self._committed >= target), timeout)

    async def close(self) -> None:
        if self._task is None:
            return
        if self._submitted > self._committed:
            try:
                await self.flush()
            except asyncio.TimeoutError:
                log.error("writer.closed_with_backlog", backlog=self.backlog)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def _run(self) -> None:
        retry_delay = 0.5
        while True:
            await self._has_data.wait()
            try:
                await asyncio.wait_for(self._full.wait(), self._settings.flush_interval)
            except asyncio.TimeoutError:
                pass
            batch, target = self._pending, self._submitted
            self._pending = ChangeSet()
            self._has_data.clear()
            self._full.clear()
            while True:
                try:
                    await self._write(batch)
                    retry_delay = 0.5
                    break
                except _TRANSIENT as exc:
                    log.error("writer.retrying", error=repr(exc),
                              batch=len(batch), waiting=self.backlog, retry_in=retry_delay)
                    await asyncio.sleep(retry_delay)
                    retry_delay = min(retry_delay * 2, 10.0)
                except asyncpg.PostgresError as exc:
                    # Retrying a batch PostgreSQL rejects would stop every later write:
                    # put the rows in the log, where they can be recovered, and go on.
                    log.error("writer.batch_rejected", detail="rows logged here for recovery",
                              error=repr(exc), calls=[(c.linkedid, dict(c.fields)) for c in batch.calls],
                              timeline=[(t.linkedid, t.kind, dict(t.detail)) for t in batch.timeline])
                    break
            async with self._progress:
                self._committed = target
                self._progress.notify_all()

    async def _write(self, batch: ChangeSet) -> None:
        assert self._pool is not None, "CallWriter.start(pool) first"
        # Every timeline row needs its call row; a row-less call gets one here.
        calls = batch.calls + [CallFacts(linkedid, {}) for linkedid in {t.linkedid for t in batch.timeline}]
        messages: list[str] = []
        async with self._pool.acquire() as conn:
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
        self.batches += 1
        self.rows_written += len(new)
        if self._publisher is not None:
            self._publisher.publish(Committed(
                timeline=new, committed_at=time.time(), origin=self._publisher.origin,
                calls=batch.calls, recordings=batch.recordings, rows=batch.rows), messages)

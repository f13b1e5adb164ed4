"""Catching up with the calls the bridge did not see, from what Asterisk
wrote down itself.

AMI says nothing about the past: a call that begins and ends while
``hotline serve`` is down or disconnected leaves no trace in the next
session (capture E10: CoreShowChannels empty, only QueueStatus's anonymous
``Abandoned`` counter moved). Asterisk keeps writing, whatever happens to the
bridge or to PostgreSQL (E11): cdr-csv's ``Master.csv`` (caller, start, end),
``queue_log`` (queue, wait, abandon, agent, talk time: the one place that
tells an abandon) and the MixMonitor file. README, "Calls while the bridge
was down", says why these files and not cdr_pgsql.

A run reads each file from where the last one stopped (``asterisk_log_positions``,
saved in the same transaction as what was made of the lines: see
:mod:`ivr.calls.log_files` for rotation), turns the new lines into the facts
the stored calls lack (:mod:`ivr.calls.reconcile`), then registers the
recording files nobody registered (:mod:`recordings.orphans`). Lines younger
than ``settle_seconds`` wait for the next run, so a call whose AMI events are
still on their way is not reconciled from its files first. A garbage line is
logged with its file and byte offset and skipped; the lines around it are
read. Runs come once at start-up, after every AMI login (after the resync),
and every ``interval`` seconds, one at a time.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable

import asyncpg
from aiohttp import web

from hotline.core import Core
from hotline.facts import ChangeSet
from hotline.logs import get_logger
from hotline.tasks import cancel_and_wait
from ivr.ami import AmiConnection
from ivr.ami.message import Event
from ivr.calls import log_files, store
from ivr.calls.asterisk_logs import BadLine, parse_cdr_csv, parse_queue_log
from ivr.calls.reconcile import (CDR_CSV, QUEUE_LOG, Evidence, Reconciled, from_cdrs, from_queue_log, reconcile,
                                 recordings_found)
from ivr.calls.tracker import CallTracker
from recordings.orphans import MonitorFile, monitor_files
from recordings.store import registered_paths

log = get_logger(__name__)

POSITIONS = "asterisk_log_positions"   # the call writer's sink for store.LogPosition rows
READ_BUDGET = 1 << 18                  # bytes per reading (~3000 queue_log lines): one transaction
SWEEP_BATCH = 500                      # calls whose recordings are registered in one transaction
FLUSH_TIMEOUT = 30.0


@dataclass(frozen=True)
class Source:
    name: str
    path: str
    parse: Callable[[bytes], Any]
    time_of: Callable[[Any], datetime]          # when the record was written
    evidence: Callable[[Iterable[tuple[Any, str]], dict[str, str]], dict[str, Evidence]]


@dataclass
class Parsed:
    records: list[tuple[Any, str]]              # (record, its line) up to the first one too young
    bad: list[tuple[log_files.Line, str]]       # garbage lines and why
    last: log_files.Line | None                 # the last line taken (garbage included)
    held_back: bool                             # a line too young stopped the reading


def _parse(source: Source, lines: list[log_files.Line], cutoff: datetime) -> Parsed:
    parsed = Parsed([], [], None, False)
    for line in lines:
        try:
            record = source.parse(line.text)
        except BadLine as exc:
            parsed.bad.append((line, str(exc)))
            parsed.last = line
            continue
        if source.time_of(record) > cutoff:
            parsed.held_back = True
            break
        parsed.records.append((record, line.text.decode("utf-8")))
        parsed.last = line
    return parsed


class CatchUp:
    def __init__(self, core: Core, tracker: CallTracker):
        self.core = core
        self.settings = core.settings.reconcile
        self.tracker = tracker
        self.node = socket.gethostname()
        self.departments = {d.queue: d.code for d in core.settings.departments}
        self.runs = 0
        self._wanted = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._missing_told: set[str] = set()
        core.writer.add_sink(POSITIONS, store.save_log_positions)

    def sources(self) -> list[Source]:
        found = [Source(QUEUE_LOG, self.settings.queue_log, parse_queue_log, lambda e: e.at, from_queue_log),
                 Source(CDR_CSV, self.settings.cdr_csv, parse_cdr_csv, lambda r: r.end, from_cdrs)]
        return [s for s in found if s.path]

    # -- when --------------------------------------------------------------------------

    def request(self) -> None:
        """Run soon (once more, if a run is going on)."""
        self._idle.clear()
        self._wanted.set()

    async def after_login(self, _ami: AmiConnection, _channels: list[Event]) -> None:
        self.request()   # in the background: the menu's rescue must not wait for a file

    async def wait_idle(self) -> None:
        """Return once no run is going on or asked for."""
        await self._idle.wait()

    async def context(self, _app: web.Application) -> AsyncIterator[None]:
        self.request()
        task = asyncio.create_task(self._loop(), name="calls-catch-up")
        try:
            yield
        finally:
            await cancel_and_wait(task)
            self._idle.set()

    async def _loop(self) -> None:
        interval = self.settings.interval or None
        while True:
            try:
                await asyncio.wait_for(self._wanted.wait(), interval)
            except asyncio.TimeoutError:
                pass
            self._wanted.clear()
            self._idle.clear()
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except (asyncio.TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # PostgreSQL away or the writer behind: nothing read is lost, the positions
                # saved say where to go on.
                log.warning("reconcile.postponed", error=repr(exc), detail="tried again at the next login or interval")
            except Exception:
                log.exception("reconcile.failed", detail="tried again at the next login or interval")
            if not self._wanted.is_set():
                self._idle.set()

    # -- a run ---------------------------------------------------------------------------

    async def run(self) -> dict[str, dict[str, int]]:
        """One pass over every source and the recordings folder; returns what it did."""
        began = time.monotonic()
        now = datetime.now(timezone.utc)
        ami = self.core.ami
        live = self.tracker.live_uniqueids if ami is not None and ami.logged_in else None
        await self.core.writer.flush(FLUSH_TIMEOUT)     # the live facts first: they win
        async with self.core.pool.acquire() as conn:
            positions = await store.log_positions(conn, self.node)
        report = {s.name: await self._read(s, positions.get(s.name), now, live) for s in self.sources()}
        report["recording"] = await self._sweep_recordings(now, live)
        self.runs += 1
        busy = any(any(figures.values()) for figures in report.values())
        (log.info if busy else log.debug)("reconcile.finished", seconds=round(time.monotonic() - began, 3),
                                          **{k: v for k, v in report.items()})
        return report

    async def _read(self, source: Source, saved: store.LogPosition | None, now: datetime,
                    live: frozenset[str] | None) -> dict[str, int]:
        figures = {"lines": 0, "skipped": 0, "calls": 0}
        position = None
        if saved is not None and saved.path == source.path:
            position = log_files.Position(saved.device, saved.inode, saved.head_sha1, saved.byte_offset)
        cutoff = now - timedelta(seconds=self.settings.settle_seconds)
        while True:
            reading = await asyncio.to_thread(log_files.read_new, source.path, position, READ_BUDGET)
            self._tell(source, reading.notes)
            parsed = await asyncio.to_thread(_parse, source, reading.lines, cutoff)
            for line, reason in parsed.bad:
                log.warning("reconcile.bad_line", source=source.name, path=line.path, offset=line.start,
                            bytes=len(line.text), reason=reason, detail="skipped; the lines around it are read")
            records, skipped, last, held_back = parsed.records, len(parsed.bad), parsed.last, parsed.held_back
            if last is None and reading.lines:
                break                       # the first new line is too young: next run
            # No lines at all: the position may still move (a rotation to an empty file).
            end = last.after if last is not None else reading.position
            if end is None or end == position:
                break
            result = await self._reconcile(source, records, now)
            changes = result.changes
            if live is not None and result.made:
                # Made from the files with no end in them, and no channel now: it ended
                # unseen, marked lost as the resync does (when the bridge is not logged
                # in they stay open: the next login's resync decides).
                changes.extend(self.tracker.close_lost_calls([{"linkedid": m} for m in result.made], now))
            figures["lines"] += len(records)
            figures["skipped"] += skipped
            figures["calls"] += result.filled
            changes.rows[POSITIONS] = [store.LogPosition(
                self.node, source.name, source.path, end.device, end.inode, end.head, end.offset,
                lines_read=len(records), lines_skipped=skipped)]
            self.core.writer.submit(changes)
            await self.core.writer.flush(FLUSH_TIMEOUT)
            position = end
            if held_back or last is None:
                break
        return figures

    async def _reconcile(self, source: Source, records: list[tuple[Any, str]], now: datetime) -> Reconciled:
        # The CPU work in a worker thread: a first reading of a long file must not hold up AMI events.
        evidence = await asyncio.to_thread(source.evidence, records, self.departments)
        if not evidence:
            return Reconciled(ChangeSet(), [])
        async with self.core.pool.acquire() as conn:
            stored = await store.calls_by_linkedid(conn, list(evidence))
        return await asyncio.to_thread(reconcile, evidence.values(), stored, now)

    def _tell(self, source: Source, notes: list[str]) -> None:
        for note in notes:
            if note == "missing":
                if source.name not in self._missing_told:
                    self._missing_told.add(source.name)
                    folder = Path(source.path).parent
                    log.warning("reconcile.file_missing", source=source.name, path=source.path,
                                detail="no calls to read yet" if folder.is_dir()
                                else f"{folder} does not exist: is Asterisk's log volume mounted here?")
                continue
            self._missing_told.discard(source.name)
            log.warning("reconcile.file_changed", source=source.name, path=source.path, what=note)

    async def _sweep_recordings(self, now: datetime, live: frozenset[str] | None) -> dict[str, int]:
        recordings = self.core.settings.recordings
        files = await asyncio.to_thread(monitor_files, recordings.local_dir, recordings.asterisk_dir)
        if not files:
            return {"files": 0, "calls": 0}
        async with self.core.pool.acquire() as conn:
            registered = await registered_paths(conn, [f.asterisk_path for f in files])
            waiting = [f for f in files if f.asterisk_path not in registered and (live is None or f.uniqueid not in live)]
            stored = await store.calls_by_linkedid(conn, list({f.uniqueid for f in waiting}))
        quiet_before = now - timedelta(seconds=self.settings.recording_quiet_seconds)
        by_call: dict[str, list[MonitorFile]] = {}
        for item in waiting:
            row = stored.get(item.uniqueid)
            if row is None and item.modified_at > quiet_before:
                continue   # nobody knows its call, which may still be going on
            if row is not None and row["ended_at"] is None and row["lost_at"] is None:
                continue   # going on as far as we know: its hangup registers it
            by_call.setdefault(item.uniqueid, []).append(item)
        found = 0
        calls = list(by_call.items())
        for first in range(0, len(calls), SWEEP_BATCH):
            batch = dict(calls[first:first + SWEEP_BATCH])
            result = await asyncio.to_thread(recordings_found, batch, stored, now)
            for uniqueid, items in batch.items():
                log.info("reconcile.recording_found", call_id=uniqueid, paths=[i.asterisk_path for i in items],
                         made_call=uniqueid not in stored)
            found += result.filled
            self.core.writer.submit(result.changes)
            await self.core.writer.flush(FLUSH_TIMEOUT)
        return {"files": sum(len(v) for v in by_call.values()), "calls": found}

"""Registers finished MixMonitor files in the database.

Asterisk emits no MixMonitorStop when a recording ends with the call, so the
call tracker marks the recorded channel's hangup as a finished recording, and
the registrar hears of it from the event hub once that is committed. The file may still be closing,
so we wait ``settle_seconds`` and look again a few times before calling it
missing. A missing, empty, unreadable or rejected file (not a regular file
inside ``recordings.local_dir``: see :mod:`recordings.inspect`) is stored with
that status and logged as an error: flagged, never hidden.

The row goes to PostgreSQL through the call writer (its ``recordings`` sink),
so a database that is away or read-only delays it without losing it: the
writer retries, spills and dead-letters for the registrar as for the calls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol, Sequence

from hotline.facts import ChangeSet, RecordingFinished
from hotline.logs import bound_call, get_logger
from hotline.settings import RecordingSettings
from recordings.inspect import RecordingFile, Rejected, inspect_recording
from recordings.inspect import local_path as _local_path
from recordings.store import RecordingRow, save_recordings

log = get_logger(__name__)

SINK = "recordings"
INSPECTIONS_AT_ONCE = 4   # worker threads reading files


class Writer(Protocol):
    """What the registrar needs of :class:`ivr.calls.writer.CallWriter`."""

    def add_sink(self, name: str, write: Any) -> None: ...

    def submit(self, changes: ChangeSet) -> None: ...


def local_path(settings: RecordingSettings, asterisk_path: str) -> Path:
    """Where this service sees a file Asterisk wrote (the shared volume may be
    mounted at another path here); :class:`~recordings.inspect.Rejected` for a
    path outside ``asterisk_dir`` or climbing with ``..``."""
    return _local_path(settings.asterisk_dir, settings.local_dir, asterisk_path)


class RecordingRegistrar:
    def __init__(self, settings: RecordingSettings, writer: Writer):
        self._settings = settings
        self._writer = writer
        writer.add_sink(SINK, save_recordings)
        self._tasks: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(INSPECTIONS_AT_ONCE)

    def submit(self, finished: Sequence[RecordingFinished]) -> None:
        """Register in the background; the AMI reader never waits for disk I/O."""
        for item in finished:
            task = asyncio.create_task(self._register_logged(item), name=f"recording-{item.uniqueid}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _register_logged(self, item: RecordingFinished) -> None:
        try:
            await self.register(item)
        except Exception:   # never "Task exception was never retrieved"
            log.exception("recording.registration_failed", call_id=item.linkedid, path=item.asterisk_path)

    async def register(self, item: RecordingFinished) -> RecordingFile:
        """Inspect the file and hand its row to the call writer (committed with
        the writer's next batch; ``core.settle()`` waits for it)."""
        with bound_call(item.linkedid):
            try:
                path = local_path(self._settings, item.asterisk_path)
            except Rejected as exc:
                found = RecordingFile("rejected", problem=f"{item.asterisk_path}: {exc}")
                shown = item.asterisk_path
            else:
                found = await self._inspect(path)
                shown = str(path)
            self._writer.submit(ChangeSet(rows={SINK: [
                RecordingRow.of(item.linkedid, item.uniqueid, item.asterisk_path, shown, found)]}))
            if found.status == "ok":
                log.info("recording.registered", path=shown, bytes=found.bytes,
                         duration=found.duration_seconds)
            else:
                log.error("recording.flagged", status=found.status, path=shown, problem=found.problem)
            return found

    async def _inspect(self, path: Path) -> RecordingFile:
        attempts = max(1, self._settings.missing_retries)
        found = RecordingFile("missing")
        root = Path(self._settings.local_dir)
        for attempt in range(attempts):
            await asyncio.sleep(self._settings.settle_seconds * (1 if attempt == 0 else 2))
            try:
                async with self._slots:
                    found = await asyncio.to_thread(inspect_recording, path, root)
            except Exception as exc:
                log.exception("recording.inspection_failed", path=str(path))
                return RecordingFile("unreadable", problem=f"inspecting {path} failed: {exc!r}")
            if found.status != "missing":
                break
        return found

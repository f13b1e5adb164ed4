"""Registers finished MixMonitor files in the database.

Asterisk emits no MixMonitorStop when a recording ends with the call, so the
call tracker marks the recorded channel's hangup as a finished recording, and
the registrar hears of it from the event hub once that is committed. The file may still be closing,
so we wait ``settle_seconds`` and look again a few times before calling it
missing. A missing, empty or unreadable file is stored with that status and
logged as an error: flagged, never hidden.
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath
from typing import Sequence

import asyncpg

from hotline.logs import bound_call, get_logger
from hotline.settings import RecordingSettings
from hotline.facts import RecordingFinished
from recordings.inspect import RecordingFile, inspect_recording
from recordings.store import save_recording

log = get_logger(__name__)


def local_path(settings: RecordingSettings, asterisk_path: str) -> Path:
    """Where this service sees a file Asterisk wrote (the shared volume may be
    mounted at another path here)."""
    theirs = PurePosixPath(asterisk_path)
    root = PurePosixPath(settings.asterisk_dir)
    try:
        relative = theirs.relative_to(root)
    except ValueError:
        return Path(asterisk_path)
    return Path(settings.local_dir) / relative


class RecordingRegistrar:
    def __init__(self, settings: RecordingSettings):
        self._pool: asyncpg.Pool | None = None
        self._settings = settings
        self._tasks: set[asyncio.Task] = set()
        # A burst of hangups must not take every pooled connection from the call writer.
        self._slots = asyncio.Semaphore(2)

    def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def submit(self, finished: Sequence[RecordingFinished]) -> None:
        """Register in the background; the AMI reader never waits for disk I/O."""
        for item in finished:
            task = asyncio.create_task(self.register(item), name=f"recording-{item.uniqueid}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def register(self, item: RecordingFinished) -> RecordingFile:
        with bound_call(item.linkedid):
            path = local_path(self._settings, item.asterisk_path)
            found = await self._inspect(path)
            assert self._pool is not None, "RecordingRegistrar.start(pool) first"
            async with self._slots, self._pool.acquire() as conn:
                await save_recording(conn, item.linkedid, item.uniqueid, item.asterisk_path,
                                     str(path), found)
            if found.status == "ok":
                log.info("recording.registered", path=str(path), bytes=found.bytes,
                         duration=found.duration_seconds)
            else:
                log.error("recording.flagged", status=found.status, path=str(path), problem=found.problem)
            return found

    async def _inspect(self, path: Path) -> RecordingFile:
        attempts = max(1, self._settings.missing_retries)
        found = RecordingFile("missing")
        for attempt in range(attempts):
            await asyncio.sleep(self._settings.settle_seconds * (1 if attempt == 0 else 2))
            found = await asyncio.to_thread(inspect_recording, path)
            if found.status != "missing":
                break
        return found

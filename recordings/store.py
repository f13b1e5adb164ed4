"""SQL for the recordings index."""

from __future__ import annotations

import asyncpg

from recordings.inspect import RecordingFile

_UPSERT = """
INSERT INTO recordings (linkedid, uniqueid, asterisk_path, local_path, status, bytes,
                        duration_seconds, sha256, problem)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (asterisk_path) DO UPDATE SET
    status = EXCLUDED.status, bytes = EXCLUDED.bytes,
    duration_seconds = EXCLUDED.duration_seconds, sha256 = EXCLUDED.sha256,
    problem = EXCLUDED.problem, registered_at = now()
"""


async def save_recording(conn: asyncpg.Connection, linkedid: str, uniqueid: str,
                         asterisk_path: str, local_path: str, found: RecordingFile) -> None:
    await conn.execute(_UPSERT, linkedid, uniqueid, asterisk_path, local_path, found.status,
                       found.bytes, found.duration_seconds, found.sha256, found.problem)


async def recordings_of_call(conn: asyncpg.Connection, linkedid: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM recordings WHERE linkedid = $1 ORDER BY id", linkedid)

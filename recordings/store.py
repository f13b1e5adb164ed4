"""SQL for the recordings index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import asyncpg

from recordings.inspect import RecordingFile


@dataclass(frozen=True)
class RecordingRow:
    """One recording as the index stores it: a sink row of the call writer
    (plain data, so it can wait in a spill file or the dead-letter table)."""

    linkedid: str
    uniqueid: str
    asterisk_path: str
    local_path: str
    status: str
    bytes: int | None = None
    duration_seconds: float | None = None
    sha256: str | None = None
    problem: str | None = None

    @classmethod
    def of(cls, linkedid: str, uniqueid: str, asterisk_path: str, local_path: str,
           found: RecordingFile) -> "RecordingRow":
        return cls(linkedid, uniqueid, asterisk_path, local_path, found.status, found.bytes,
                   found.duration_seconds, found.sha256, found.problem)


_UPSERT = """
INSERT INTO recordings (linkedid, uniqueid, asterisk_path, local_path, status, bytes,
                        duration_seconds, sha256, problem)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (asterisk_path) DO UPDATE SET
    status = EXCLUDED.status, bytes = EXCLUDED.bytes,
    duration_seconds = EXCLUDED.duration_seconds, sha256 = EXCLUDED.sha256,
    problem = EXCLUDED.problem, registered_at = now()
"""


async def save_recordings(conn: asyncpg.Connection, rows: Sequence[RecordingRow]) -> None:
    """The call writer's ``recordings`` sink: in order, a later row for the
    same file replacing an earlier one."""
    for r in rows:
        await conn.execute(_UPSERT, r.linkedid, r.uniqueid, r.asterisk_path, r.local_path, r.status,
                           r.bytes, r.duration_seconds, r.sha256, r.problem)


async def save_recording(conn: asyncpg.Connection, linkedid: str, uniqueid: str,
                         asterisk_path: str, local_path: str, found: RecordingFile) -> None:
    await save_recordings(conn, [RecordingRow.of(linkedid, uniqueid, asterisk_path, local_path, found)])


async def recordings_of_call(conn: asyncpg.Connection, linkedid: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM recordings WHERE linkedid = $1 ORDER BY id", linkedid)


async def registered_paths(conn: asyncpg.Connection, asterisk_paths: Sequence[str]) -> set[str]:
    """Those of these files the index already has a row for."""
    if not asterisk_paths:
        return set()
    rows = await conn.fetch("SELECT asterisk_path FROM recordings WHERE asterisk_path = ANY($1::text[])",
                            list(asterisk_paths))
    return {r["asterisk_path"] for r in rows}


async def recording(conn: asyncpg.Connection, recording_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM recordings WHERE id = $1", recording_id)


async def taken_by(conn: asyncpg.Connection, account_id: int, linkedid: str, uniqueid: str) -> bool:
    """Whether the agent's account took this call (an ``in_call`` row of the
    agents' state log naming the caller's channel)."""
    return await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM agent_state_log
                          WHERE account_id = $1 AND to_state = 'in_call' AND uniqueid IN ($2, $3))""",
        account_id, linkedid, uniqueid)

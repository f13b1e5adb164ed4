"""SQL for queue membership (asyncpg, written out)."""

from __future__ import annotations

from typing import Iterable, Sequence

import asyncpg

from agents.membership import QueueMemberState

_UPSERT_MEMBER = """
INSERT INTO queue_members (queue, interface, member_name, paused, paused_reason, status, calls_taken)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (queue, interface) DO UPDATE SET
    member_name = EXCLUDED.member_name, paused = EXCLUDED.paused,
    paused_reason = EXCLUDED.paused_reason, status = EXCLUDED.status,
    calls_taken = EXCLUDED.calls_taken, updated_at = now()
"""


async def write_members(conn: asyncpg.Connection, members: Sequence[QueueMemberState]) -> None:
    for m in members:
        if m.removed:
            await conn.execute("DELETE FROM queue_members WHERE queue = $1 AND interface = $2",
                               m.queue, m.interface)
        else:
            await conn.execute(_UPSERT_MEMBER, m.queue, m.interface, m.member_name, m.paused,
                               m.paused_reason, m.status, m.calls_taken)


async def replace_members(conn: asyncpg.Connection, members: Sequence[QueueMemberState],
                          queues: Iterable[str]) -> None:
    """QueueStatus is the truth after a (re)connect: the listed queues' members
    become exactly the ones listed."""
    async with conn.transaction():
        await conn.execute("DELETE FROM queue_members WHERE queue = ANY($1::text[])", list(queues))
        await write_members(conn, members)

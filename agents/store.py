"""SQL for queue membership and the agents' state log (asyncpg, written out)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

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


@dataclass(frozen=True)
class AgentStateRow:
    """One row of ``agent_state_log`` (plain data: the call writer may spill it)."""

    account_id: int | None
    interface: str
    agent_name: str | None
    from_state: str
    to_state: str
    reason: str | None
    cause: str
    uniqueid: str | None
    occurred_at: datetime


_INSERT_STATES = """
INSERT INTO agent_state_log (account_id, interface, agent_name, from_state, to_state, reason, cause,
                             uniqueid, occurred_at)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::timestamptz[])
"""


async def write_states(conn: asyncpg.Connection, rows: Sequence[AgentStateRow]) -> None:
    """The call writer's ``agent_states`` sink."""
    columns = list(zip(*[(r.account_id, r.interface, r.agent_name, r.from_state, r.to_state, r.reason,
                          r.cause, r.uniqueid, r.occurred_at) for r in rows]))
    await conn.execute(_INSERT_STATES, *[list(c) for c in columns])


async def latest_states(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Each agent's last recorded state (for a process that did not see the events)."""
    return await conn.fetch(
        "SELECT DISTINCT ON (interface) * FROM agent_state_log ORDER BY interface, occurred_at DESC, id DESC")


async def state_log(conn: asyncpg.Connection, interface: str, limit: int = 100) -> list[asyncpg.Record]:
    """An agent's state changes, oldest first."""
    return await conn.fetch(
        "SELECT * FROM (SELECT * FROM agent_state_log WHERE interface = $1 ORDER BY occurred_at DESC, id DESC"
        " LIMIT $2) AS recent ORDER BY occurred_at, id", interface, limit)


# The audit row of each supervisor code dialled (agents/spying.py), naming the
# accounts that sit at the dialling phone (an extension is a desk, shared by shifts).
_INSERT_SPY_USES = """
INSERT INTO audit_log (at, actor, action, subject, address, detail)
SELECT u.at, 'phone:' || u.spyer, u.action, 'extension:' || u.target, NULL,
       jsonb_build_object(
           'mode', u.mode, 'channel', u.channel, 'uniqueid', u.uniqueid, 'linkedid', u.linkedid,
           'accounts', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', a.id, 'login', a.login, 'role', a.role)
                                                  ORDER BY a.id), '[]'::jsonb)
                        FROM accounts a WHERE a.extension = u.spyer AND NOT a.disabled))
FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[]) AS u(at, action, spyer, target, mode, channel, uniqueid, linkedid)
"""


async def write_spy_uses(conn: asyncpg.Connection, uses: Sequence[Any]) -> None:
    """The call writer's ``spy_audit`` sink."""
    columns = list(zip(*[(u.at, u.action, u.spyer, u.target, u.mode, u.channel, u.uniqueid, u.linkedid)
                         for u in uses]))
    await conn.execute(_INSERT_SPY_USES, *[list(c) for c in columns])

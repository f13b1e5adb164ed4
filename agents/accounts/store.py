"""SQL for accounts and the queues they serve (asyncpg, written out)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from agents.accounts.rules import Draft, QueueSeat
from hotline.auth.roles import Role


@dataclass(frozen=True)
class Account:
    id: int
    login: str
    name: str
    extension: str | None
    role: Role
    disabled: bool
    queues: tuple[QueueSeat, ...]
    created_at: datetime
    created_by: str

    @property
    def subject(self) -> str:
        """How the audit log names this account as the thing acted on."""
        return f"account:{self.id}"


_SELECT = """
SELECT a.id, a.login, a.name, a.extension, a.role, a.disabled, a.created_at, a.created_by,
       coalesce(array_agg(q.queue ORDER BY q.penalty, q.queue) FILTER (WHERE q.queue IS NOT NULL), '{}') AS queues,
       coalesce(array_agg(q.penalty ORDER BY q.penalty, q.queue) FILTER (WHERE q.queue IS NOT NULL), '{}') AS penalties
FROM accounts a LEFT JOIN account_queues q ON q.account_id = a.id
"""


def _account(row: asyncpg.Record) -> Account:
    seats = tuple(QueueSeat(q, p) for q, p in zip(row["queues"], row["penalties"]))
    return Account(row["id"], row["login"], row["name"], row["extension"], Role(row["role"]), row["disabled"],
                   seats, row["created_at"], row["created_by"])


async def insert(conn: asyncpg.Connection, draft: Draft, password_hash: str, actor: str) -> int:
    account_id = await conn.fetchval(
        "INSERT INTO accounts (login, name, extension, role, password_hash, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        draft.login, draft.name, draft.extension, draft.role.value, password_hash, actor)
    await conn.executemany("INSERT INTO account_queues (account_id, queue, penalty) VALUES ($1, $2, $3)",
                           [(account_id, s.queue, s.penalty) for s in draft.queues])
    return account_id


async def listing(conn: asyncpg.Connection) -> list[Account]:
    rows = await conn.fetch(_SELECT + " GROUP BY a.id ORDER BY a.disabled, a.login")
    return [_account(r) for r in rows]


async def by_login(conn: asyncpg.Connection, login: str, *, lock: bool = False) -> Account | None:
    if lock:
        await conn.execute("SELECT 1 FROM accounts WHERE login = $1 FOR UPDATE", login)
    row = await conn.fetchrow(_SELECT + " WHERE a.login = $1 GROUP BY a.id", login)
    return _account(row) if row else None


async def by_id(conn: asyncpg.Connection, account_id: int, *, lock: bool = False) -> Account | None:
    if lock:
        await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
    row = await conn.fetchrow(_SELECT + " WHERE a.id = $1 GROUP BY a.id", account_id)
    return _account(row) if row else None


async def login_taken(conn: asyncpg.Connection, login: str) -> bool:
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM accounts WHERE login = $1)", login)


async def live_admins(conn: asyncpg.Connection) -> list[int]:
    """The enabled admins' ids, locked until the transaction ends (so two
    changes cannot each think the other admin remains)."""
    rows = await conn.fetch("SELECT id FROM accounts WHERE role = 'admin' AND NOT disabled ORDER BY id FOR UPDATE")
    return [r["id"] for r in rows]


async def set_disabled(conn: asyncpg.Connection, account_id: int, disabled: bool) -> None:
    await conn.execute("UPDATE accounts SET disabled = $2, updated_at = now() WHERE id = $1", account_id, disabled)


async def set_password_hash(conn: asyncpg.Connection, account_id: int, password_hash: str) -> None:
    await conn.execute("UPDATE accounts SET password_hash = $2, updated_at = now() WHERE id = $1",
                       account_id, password_hash)


async def set_role(conn: asyncpg.Connection, account_id: int, role: Role) -> None:
    await conn.execute("UPDATE accounts SET role = $2, updated_at = now() WHERE id = $1", account_id, role.value)


async def queues_of(conn: asyncpg.Connection, account_id: int) -> tuple[QueueSeat, ...]:
    """The queues an account serves, lowest penalty first (for the console's QueueAdd)."""
    rows = await conn.fetch("SELECT queue, penalty FROM account_queues WHERE account_id = $1 "
                            "ORDER BY penalty, queue", account_id)
    return tuple(QueueSeat(r["queue"], r["penalty"]) for r in rows)


async def supervisor_extensions(conn: asyncpg.Connection) -> list[str]:
    """The phones of the enabled supervisors and admins: the ones that may use the
    supervisor codes (``hotline asterisk-config`` generates them into pjsip)."""
    rows = await conn.fetch("SELECT DISTINCT extension FROM accounts WHERE role IN ('supervisor', 'admin') "
                            "AND NOT disabled AND extension IS NOT NULL ORDER BY extension")
    return [r["extension"] for r in rows]

"""Failed logins lock a login name, or an address, for a while.

Counted in PostgreSQL (``login_failures``), so every process sees the same
counts. A login name is counted whether or not an account has it: a lockout
looks the same for every name and says nothing about which ones exist. The
lock is time-bounded: it lifts once the failures are older than
``[web] lockout_window``. Attempts refused while locked are not counted again,
so an attacker cannot keep a person locked out for longer than the window
after they stop.
"""

from __future__ import annotations

from datetime import timedelta
from enum import Enum

import asyncpg

from hotline.settings import WebSettings

MAX_LOGIN_TEXT = 64    # characters of a typed login kept (the longest real one is 32)


class LockedBy(str, Enum):
    LOGIN = "login"
    ADDRESS = "address"


async def _counts(conn: asyncpg.Connection, login: str, address: str, web: WebSettings) -> tuple[int, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM login_failures WHERE login = $1 AND at > now() - $3::interval) AS by_login,"
        "       (SELECT count(*) FROM login_failures WHERE address = $2 AND at > now() - $3::interval) AS by_address",
        login[:MAX_LOGIN_TEXT], address, timedelta(seconds=web.lockout_window))
    return row["by_login"], row["by_address"]


def _verdict(by_login: int, by_address: int, web: WebSettings) -> LockedBy | None:
    if by_login >= web.lockout_failures:
        return LockedBy.LOGIN
    if by_address >= web.lockout_address_failures:
        return LockedBy.ADDRESS
    return None


async def locked(conn: asyncpg.Connection, login: str, address: str, web: WebSettings) -> LockedBy | None:
    """Whether a login attempt for ``login`` from ``address`` is refused now."""
    return _verdict(*await _counts(conn, login, address, web), web)


async def record_failure(conn: asyncpg.Connection, login: str, address: str,
                         web: WebSettings) -> LockedBy | None:
    """Count a failed attempt; returns what it locked (None: nothing is locked yet)."""
    await conn.execute("INSERT INTO login_failures (login, address) VALUES ($1, $2)",
                       login[:MAX_LOGIN_TEXT], address)
    return await locked(conn, login, address, web)


async def forget(conn: asyncpg.Connection, login: str) -> None:
    """A login's failures, after it succeeded or an admin reset its password."""
    await conn.execute("DELETE FROM login_failures WHERE login = $1", login[:MAX_LOGIN_TEXT])


async def purge(conn: asyncpg.Connection, web: WebSettings) -> int:
    """Drop failures too old to count (the audit log keeps every attempt)."""
    done = await conn.execute("DELETE FROM login_failures WHERE at < now() - $1::interval",
                              timedelta(seconds=web.lockout_window))
    return int(done.split()[-1])

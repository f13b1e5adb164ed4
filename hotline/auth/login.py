"""A person logs in: lockout, password, a new session, the audit log.

Every attempt is one audit row: ``login.succeeded`` (actor: the account),
``login.failed`` (unknown login, wrong password or disabled account: the
reason is in the row, for admins; the person is only told the login or the
password is wrong), ``login.locked_out`` when a failure crosses the lockout
threshold, ``login.refused_locked`` for attempts while locked. Failed
attempts are audited as the actor ``anonymous`` with the typed login as the
subject (``login:<typed>``).

No database connection is held while a password is hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import asyncpg

from hotline.auth import audit, lockout, sessions
from hotline.auth.passwords import Passwords
from hotline.auth.roles import Identity, Role
from hotline.logs import get_logger
from hotline.settings import WebSettings

log = get_logger(__name__)

ANONYMOUS = "anonymous"
CONNECTION_TIMEOUT = 2.0


class Outcome(str, Enum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    LOCKED = "locked"


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    cookie: str | None = None            # the new session's cookie value, when OK
    identity: Identity | None = None


def normalise(login: str) -> str:
    return login.strip().lower()[:lockout.MAX_LOGIN_TEXT]


async def admin_exists(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM accounts WHERE role = 'admin' AND NOT disabled)")


async def log_in(pool: asyncpg.Pool, passwords: Passwords, web: WebSettings, typed_login: str, password: str,
                 address: str, user_agent: str | None, old_cookie: str | None) -> Attempt:
    """Check one attempt; on success the old session (if any) is ended and a
    new one made, so a session id known before login is worthless after it."""
    login = normalise(typed_login)
    subject = f"login:{login}"
    async with pool.acquire(timeout=CONNECTION_TIMEOUT) as conn:
        locked_by = await lockout.locked(conn, login, address, web)
        if locked_by is not None:
            await audit.record(conn, ANONYMOUS, "login.refused_locked", subject, address,
                               {"locked_by": locked_by.value})
            log.warning("auth.login_refused_locked", login=login, address=address, locked_by=locked_by.value)
            return Attempt(Outcome.LOCKED)
        account = await conn.fetchrow(
            "SELECT id, login, role, password_hash, disabled FROM accounts WHERE login = $1", login)
    verdict = await passwords.verify(account["password_hash"] if account else None, password)
    async with pool.acquire(timeout=CONNECTION_TIMEOUT) as conn:
        if account is not None and verdict.matches and not account["disabled"]:
            identity = Identity("account", account["id"], account["login"], Role(account["role"]))
            async with conn.transaction():
                if verdict.rehashed is not None:
                    await conn.execute("UPDATE accounts SET password_hash = $2 WHERE id = $1",
                                       account["id"], verdict.rehashed)
                if old_cookie:
                    await sessions.end(conn, old_cookie)
                cookie = await sessions.create(conn, account["id"], web, address, user_agent)
                await lockout.forget(conn, login)
                await audit.record(conn, identity.actor, "login.succeeded", f"account:{account['id']}", address,
                                   {"rehashed": True} if verdict.rehashed else None)
            log.info("auth.login", actor=identity.actor, address=address)
            return Attempt(Outcome.OK, cookie, identity)
        reason = ("unknown login" if account is None else "account disabled" if account["disabled"]
                  else "wrong password")
        detail = {"reason": reason, **({"account": account["id"]} if account else {})}
        async with conn.transaction():
            await audit.record(conn, ANONYMOUS, "login.failed", subject, address, detail)
            locked_by = await lockout.record_failure(conn, login, address, web)
            if locked_by is not None:
                await audit.record(conn, ANONYMOUS, "login.locked_out", subject, address,
                                   {"locked_by": locked_by.value, "window_seconds": web.lockout_window})
        log.warning("auth.login_failed", login=login, address=address, reason=reason,
                    locked_by=locked_by.value if locked_by else None)
        return Attempt(Outcome.LOCKED if locked_by else Outcome.BAD_CREDENTIALS)

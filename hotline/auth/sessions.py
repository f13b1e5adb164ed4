"""People's browser sessions, kept in PostgreSQL so every ``hotline serve``
process on the database shares them.

The cookie holds 32 random bytes; the table keeps their SHA-256 (as for API
tokens), the account, a CSRF token, and when the session was made, last used
and ends. A session ends at ``expires_at`` (``[web] session_max_age`` after
login, however active), after ``session_idle_timeout`` without a request, at
logout, or when its account is disabled or its password reset. Every request
reads the account's role and disabled flag afresh, so a role change applies
at the next click.

The cookie is HttpOnly (no script reads it), SameSite=Strict (the browser
never sends it on a request another site starts: the console is opened from a
bookmark or typed, never linked from elsewhere, so Lax's one convenience,
arriving logged in from a link, is worth less than refusing every cross-site
request outright) and Secure when served over HTTPS (``[web] cookie_secure``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from aiohttp import web

from hotline.auth.roles import Identity, Role
from hotline.settings import WebSettings

COOKIE = "hotline_session"
# A session's last_seen_at is written at most this often (not on every request).
TOUCH_EVERY = timedelta(seconds=15)


@dataclass(frozen=True)
class Session:
    id: int
    identity: Identity
    display_name: str          # the account's name, for the pages
    csrf_token: str
    expires_at: datetime


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _plausible(value: str) -> bool:
    return 20 <= len(value) <= 100 and value.isascii() and value.isprintable()


async def create(conn: asyncpg.Connection, account_id: int, web_settings: WebSettings,
                 address: str | None, user_agent: str | None) -> str:
    """A new session for the account; returns the cookie's value (never stored)."""
    value = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO account_sessions (id_sha256, account_id, csrf_token, expires_at, address, user_agent) "
        "VALUES ($1, $2, $3, now() + $4::interval, $5, $6)",
        digest(value), account_id, secrets.token_urlsafe(32), timedelta(seconds=web_settings.session_max_age),
        address, (user_agent or "")[:300] or None)
    return value


_LOOKUP = """
WITH live AS (
    SELECT s.id, s.csrf_token, s.expires_at, s.last_seen_at, a.id AS account_id, a.login, a.name, a.role
    FROM account_sessions s JOIN accounts a ON a.id = s.account_id
    WHERE s.id_sha256 = $1 AND s.expires_at > now() AND s.last_seen_at > now() - $2::interval
      AND NOT a.disabled
), touched AS (
    UPDATE account_sessions SET last_seen_at = now()
    FROM live WHERE account_sessions.id = live.id AND live.last_seen_at < now() - $3::interval
)
SELECT * FROM live
"""


async def lookup(conn: asyncpg.Connection, value: str, web_settings: WebSettings) -> Session | None:
    """The live session the cookie names, or None (unknown, expired, idle too
    long, or its account disabled); using it counts as activity."""
    if not _plausible(value):
        return None
    row = await conn.fetchrow(_LOOKUP, digest(value), timedelta(seconds=web_settings.session_idle_timeout),
                              TOUCH_EVERY)
    if row is None:
        return None
    identity = Identity("account", row["account_id"], row["login"], Role(row["role"]))
    return Session(row["id"], identity, row["name"], row["csrf_token"], row["expires_at"])


async def still_live(conn: asyncpg.Connection, session_id: int, web_settings: WebSettings) -> Identity | None:
    """The session's identity (its account's role read afresh) while it lives,
    else None (ended, expired, idle too long, or its account disabled). Unlike
    :func:`lookup` this is not activity: a page left open does not keep its
    session alive (the consoles' WebSocket asks this periodically)."""
    row = await conn.fetchrow(
        "SELECT a.id, a.login, a.role FROM account_sessions s JOIN accounts a ON a.id = s.account_id "
        "WHERE s.id = $1 AND s.expires_at > now() AND s.last_seen_at > now() - $2::interval AND NOT a.disabled",
        session_id, timedelta(seconds=web_settings.session_idle_timeout))
    return Identity("account", row["id"], row["login"], Role(row["role"])) if row is not None else None


async def end(conn: asyncpg.Connection, value: str) -> None:
    await conn.execute("DELETE FROM account_sessions WHERE id_sha256 = $1", digest(value))


async def end_all(conn: asyncpg.Connection, account_id: int) -> int:
    """Every session of an account (disabled, or its password reset)."""
    done = await conn.execute("DELETE FROM account_sessions WHERE account_id = $1", account_id)
    return int(done.split()[-1])


async def purge(conn: asyncpg.Connection, web_settings: WebSettings) -> int:
    """Sessions past their end; a lookup already refuses them, this frees the rows."""
    done = await conn.execute(
        "DELETE FROM account_sessions WHERE expires_at < now() OR last_seen_at < now() - $1::interval",
        timedelta(seconds=web_settings.session_idle_timeout))
    return int(done.split()[-1])


def cookie_value(request: web.Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def secure_cookie(request: web.Request, web_settings: WebSettings) -> bool:
    if web_settings.cookie_secure == "auto":
        return request.secure
    return bool(web_settings.cookie_secure)


def set_cookie(response: web.StreamResponse, request: web.Request, value: str,
               web_settings: WebSettings) -> None:
    # No Max-Age: the browser drops it when closed; the server ends it anyway.
    response.set_cookie(COOKIE, value, path="/", httponly=True, samesite="Strict",
                        secure=secure_cookie(request, web_settings))


def clear_cookie(response: web.StreamResponse, request: web.Request, web_settings: WebSettings) -> None:
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict",
                        secure=secure_cookie(request, web_settings))

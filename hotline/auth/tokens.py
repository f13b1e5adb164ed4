"""API tokens for machines: made, listed, revoked, and looked up per request.

A token is ``hl_`` + 43 characters of URL-safe base64 (32 random bytes); only
its SHA-256 is stored, so the table leaks nothing usable. It is shown once,
when made.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hotline.auth import audit
from hotline.auth.roles import Identity, Role

PREFIX = "hl_"


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    role: Role
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    return value.startswith(PREFIX) and 20 <= len(value) <= 100 and value.isascii() and value.isprintable()


async def create(conn: asyncpg.Connection, name: str, role: Role, actor: str) -> tuple[int, str]:
    """A new token; returns (id, the token itself — shown once, never stored)."""
    token = PREFIX + secrets.token_urlsafe(32)
    async with conn.transaction():
        token_id = await conn.fetchval(
            "INSERT INTO api_tokens (name, role, token_sha256, created_by) VALUES ($1, $2, $3, $4) RETURNING id",
            name, role.value, digest(token), actor)
        await audit.record(conn, actor, "token.created", f"token:{token_id}", detail={"name": name,
                                                                                      "role": role.value})
    return token_id, token


async def revoke(conn: asyncpg.Connection, token_id: int, actor: str) -> bool:
    async with conn.transaction():
        done = await conn.fetchval(
            "UPDATE api_tokens SET revoked_at = now(), revoked_by = $2 "
            "WHERE id = $1 AND revoked_at IS NULL RETURNING id", token_id, actor)
        if done is not None:
            await audit.record(conn, actor, "token.revoked", f"token:{token_id}")
    return done is not None


async def listing(conn: asyncpg.Connection) -> list[TokenRow]:
    rows = await conn.fetch("SELECT id, name, role, created_at, created_by, revoked_at, last_used_at "
                            "FROM api_tokens ORDER BY id")
    return [TokenRow(**{**dict(r), "role": Role(r["role"])}) for r in rows]


async def identify(conn: asyncpg.Connection, token: str) -> Identity | None:
    """The identity of a live token, or None (unknown, malformed or revoked)."""
    if not looks_like_token(token):
        return None
    row = await conn.fetchrow(
        "UPDATE api_tokens SET last_used_at = now() "
        "WHERE token_sha256 = $1 AND revoked_at IS NULL RETURNING id, name, role", digest(token))
    if row is None:
        return None
    return Identity("token", row["id"], row["name"], Role(row["role"]))

"""The audit log: who saw or changed what, when, from where. Append-only."""

from __future__ import annotations

import json
from typing import Any, Mapping

import asyncpg
from aiohttp import web


async def record(conn: asyncpg.Connection | asyncpg.Pool, actor: str, action: str, subject: str | None = None,
                 address: str | None = None, detail: Mapping[str, Any] | None = None) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor, action, subject, address, detail) VALUES ($1, $2, $3, $4, $5::jsonb)",
        actor, action, subject, address, json.dumps(dict(detail or {}), ensure_ascii=False, default=str))


async def record_once(conn: asyncpg.Connection | asyncpg.Pool, actor: str, action: str, subject: str,
                      address: str | None, detail: Mapping[str, Any] | None, within: float) -> bool:
    """An audit row unless this actor has one with this action and subject in
    the last ``within`` seconds (a player's many requests for one listening
    are one row). True when it wrote one."""
    written = await conn.fetchval(
        """INSERT INTO audit_log (actor, action, subject, address, detail)
           SELECT $1, $2, $3, $4, $5::jsonb
           WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE subject = $3 AND actor = $1 AND action = $2
                                                     AND at > now() - make_interval(secs => $6))
           RETURNING id""",
        actor, action, subject, address, json.dumps(dict(detail or {}), ensure_ascii=False, default=str), within)
    return written is not None


async def record_request(conn: asyncpg.Connection | asyncpg.Pool, request: web.Request, action: str,
                         subject: str | None = None, detail: Mapping[str, Any] | None = None) -> None:
    """An audit row for what the request's identity did."""
    from hotline.auth.middleware import IDENTITY

    await record(conn, request[IDENTITY].actor, action, subject, request.remote, detail)


async def recent(conn: asyncpg.Connection, limit: int = 100) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM audit_log ORDER BY at DESC, id DESC LIMIT $1", limit)


async def page(conn: asyncpg.Connection, limit: int, before: int | None = None,
               text: str | None = None) -> list[asyncpg.Record]:
    """Newest first, older than row ``before``; ``text`` matches the actor,
    action or subject (case-insensitive, anywhere in them)."""
    pattern = None if not text else "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return await conn.fetch(
        "SELECT * FROM audit_log WHERE ($2::bigint IS NULL OR id < $2) "
        "AND ($3::text IS NULL OR actor ILIKE $3 OR action ILIKE $3 OR subject ILIKE $3) "
        "ORDER BY id DESC LIMIT $1", limit, before, pattern)

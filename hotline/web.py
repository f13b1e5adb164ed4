"""The HTTP side: health for operators and the call records read API.

Routes are listed in one place (``create_app``); the database pool and the
bridge are handed in and started/stopped by the caller.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from aiohttp import web

from ivr.calls import store
from recordings.store import recordings_of_call

POOL = web.AppKey("pool", asyncpg.Pool)
BRIDGE = web.AppKey("bridge", object)


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status,
                             dumps=lambda d: json.dumps(d, default=_default, ensure_ascii=False))


def _record(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    if isinstance(out.get("detail"), str):
        out["detail"] = json.loads(out["detail"])
    return out


async def health(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    try:
        async with request.app[POOL].acquire() as conn:
            await conn.fetchval("SELECT 1")
        database = True
    except (OSError, asyncpg.PostgresError):
        database = False
    ami = bool(getattr(getattr(bridge, "ami", None), "logged_in", False))
    backlog = getattr(getattr(bridge, "writer", None), "backlog", 0)
    status = 200 if database and ami else 503
    return _json({"ami_connected": ami, "database": database, "write_backlog": backlog}, status)


async def list_calls(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        return _json({"error": "limit must be a whole number"}, 400)
    if not 1 <= limit <= 500:
        return _json({"error": "limit must be between 1 and 500"}, 400)
    async with request.app[POOL].acquire() as conn:
        rows = await store.recent_calls(conn, limit)
    return _json({"calls": [dict(r) for r in rows]})


async def show_call(request: web.Request) -> web.Response:
    linkedid = request.match_info["linkedid"]
    async with request.app[POOL].acquire() as conn:
        call = await store.call_with_outcome(conn, linkedid)
        if call is None:
            return _json({"error": f"no call {linkedid}"}, 404)
        events = await store.timeline(conn, linkedid)
        files = await recordings_of_call(conn, linkedid)
    return _json({"call": dict(call), "timeline": [_record(e) for e in events],
                  "recordings": [dict(f) for f in files]})


def create_app(pool: asyncpg.Pool, bridge: Any) -> web.Application:
    app = web.Application()
    app[POOL] = pool
    app[BRIDGE] = bridge
    app.router.add_get("/healthz", health)
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{linkedid}", show_call)
    return app

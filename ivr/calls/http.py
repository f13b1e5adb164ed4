"""The call records read API: recent calls, and one call with its timeline
and recordings."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from aiohttp import web

from hotline.app import CORE
from hotline.http import json_response
from ivr.calls import store
from recordings.store import recordings_of_call

MAX_LIMIT = 500


def _event(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    if isinstance(out.get("detail"), str):
        out["detail"] = json.loads(out["detail"])
    return out


async def list_calls(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        return json_response({"error": "limit must be a whole number"}, 400)
    if not 1 <= limit <= MAX_LIMIT:
        return json_response({"error": f"limit must be between 1 and {MAX_LIMIT}"}, 400)
    async with request.app[CORE].pool.acquire() as conn:
        rows = await store.recent_calls(conn, limit)
    return json_response({"calls": [dict(r) for r in rows]})


async def show_call(request: web.Request) -> web.Response:
    linkedid = request.match_info["linkedid"]
    async with request.app[CORE].pool.acquire() as conn:
        call = await store.call_with_outcome(conn, linkedid)
        if call is None:
            return json_response({"error": f"no call {linkedid}"}, 404)
        events = await store.timeline(conn, linkedid)
        files = await recordings_of_call(conn, linkedid)
    return json_response({"call": dict(call), "timeline": [_event(e) for e in events],
                          "recordings": [dict(f) for f in files]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{linkedid}", show_call)

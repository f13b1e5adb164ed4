"""The call records read API: recent calls, and one call with its timeline
and recordings."""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg
from aiohttp import web

from hotline.app import CORE
from hotline.auth.audit import record_request
from hotline.auth.roles import Role, requires
from hotline.http import json_response
from ivr.calls import store
from recordings.store import recordings_of_call

MAX_LIMIT = 500
# Asterisk's Linkedid: epoch.sequence, optionally prefixed with the system name.
LINKEDID = re.compile(r"[A-Za-z0-9_-]{0,64}\d{1,12}\.\d{1,9}")


def whole_number(raw: str) -> int | None:
    """ASCII digits only: int() would also take "５" or " 5_0"."""
    return int(raw) if raw.isascii() and raw.isdecimal() and len(raw) <= 9 else None


def _event(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    if isinstance(out.get("detail"), str):
        out["detail"] = json.loads(out["detail"])
    return out


@requires(Role.SUPERVISOR)
async def list_calls(request: web.Request) -> web.Response:
    limit = whole_number(request.query.get("limit", "20"))
    if limit is None:
        return json_response({"error": "limit must be a whole number"}, 400)
    if not 1 <= limit <= MAX_LIMIT:
        return json_response({"error": f"limit must be between 1 and {MAX_LIMIT}"}, 400)
    async with request.app[CORE].pool.acquire() as conn:
        rows = await store.recent_calls(conn, limit)
        await record_request(conn, request, "calls.listed", detail={"count": len(rows)})
    return json_response({"calls": [dict(r) for r in rows]})


@requires(Role.SUPERVISOR)
async def show_call(request: web.Request) -> web.Response:
    linkedid = request.match_info["linkedid"]
    if not LINKEDID.fullmatch(linkedid):
        return json_response({"error": "not a call id (Asterisk's Linkedid, e.g. 1795313813.2)"}, 400)
    async with request.app[CORE].pool.acquire() as conn:
        call = await store.call_with_outcome(conn, linkedid)
        if call is None:
            return json_response({"error": f"no call {linkedid}"}, 404)
        await record_request(conn, request, "call.viewed", subject=f"call:{linkedid}")
        events = await store.timeline(conn, linkedid)
        files = await recordings_of_call(conn, linkedid)
    return json_response({"call": dict(call), "timeline": [_event(e) for e in events],
                          "recordings": [dict(f) for f in files]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{linkedid}", show_call)

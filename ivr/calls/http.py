"""The call records read API: recent calls, and one call with its timeline
and recordings.

``GET /api/calls?limit=N`` (1..500) returns the newest calls and, when there
may be more, ``next``: pass it back as ``before=`` for the next page
(``before=<started_at>,<linkedid>``, keyset paging: every page costs the same).
Queries run on the API's own pool (``core.api_pool``: few connections, each
with a ``statement_timeout``); a query cancelled by it, or no free connection
within ``connect_timeout``, answers 503 (try again), not 500.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timezone
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
MAX_CURSOR = 200   # characters of a ``before`` value
# Asterisk's Linkedid: epoch.sequence, optionally prefixed with the system name.
LINKEDID = re.compile(r"[A-Za-z0-9_-]{0,64}\d{1,12}\.\d{1,9}")


def whole_number(raw: str) -> int | None:
    """ASCII digits only: int() would also take "５" or " 5_0"."""
    return int(raw) if raw.isascii() and raw.isdecimal() and len(raw) <= 9 else None


def cursor_of(started_at: datetime, linkedid: str) -> str:
    """The ``before`` value that continues after this call (UTC, no '+' to escape)."""
    stamp = started_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp},{linkedid}"


def parse_cursor(raw: str) -> tuple[datetime, str] | None:
    """``<ISO 8601 time with offset>,<linkedid>``; None when malformed."""
    if len(raw) > MAX_CURSOR or not raw.isprintable():
        return None
    stamp, sep, linkedid = raw.partition(",")
    if not sep or not linkedid:
        return None
    stamp = stamp.strip().replace(" ", "+")   # an unescaped '+' arrives as a space
    try:
        started_at = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if started_at.tzinfo is None:
        return None
    return started_at, linkedid


def _busy(what: str) -> web.Response:
    response = json_response({"error": f"{what}; try again shortly"}, 503)
    response.headers["Retry-After"] = "1"
    return response


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
    before = None
    if "before" in request.query:
        before = parse_cursor(request.query["before"])
        if before is None:
            return json_response({"error": "before must be <started_at>,<linkedid> as given in next, "
                                           "e.g. 2026-11-22T02:00:00.000000Z,1795313795.0"}, 400)
    core = request.app[CORE]
    try:
        async with core.api_pool.acquire(timeout=core.settings.database.connect_timeout) as conn:
            calls, count, last = await store.recent_calls_json(conn, limit, before)
            await record_request(conn, request, "calls.listed", detail={"count": count})
    except asyncpg.QueryCanceledError:
        return _busy("the query took longer than the statement timeout")
    except asyncio.TimeoutError:
        return _busy("every database connection of the API is busy")
    following = cursor_of(*last) if count == limit and last is not None else None
    # PostgreSQL encoded the calls: the event loop (shared with the AMI reader) only joins text.
    return web.Response(text=f'{{"calls": {calls}, "next": {json.dumps(following)}}}',
                        content_type="application/json")


@requires(Role.SUPERVISOR)
async def show_call(request: web.Request) -> web.Response:
    linkedid = request.match_info["linkedid"]
    if not LINKEDID.fullmatch(linkedid):
        return json_response({"error": "not a call id (Asterisk's Linkedid, e.g. 1795313813.2)"}, 400)
    core = request.app[CORE]
    try:
        async with core.api_pool.acquire(timeout=core.settings.database.connect_timeout) as conn:
            call = await store.call_with_outcome(conn, linkedid)
            if call is None:
                return json_response({"error": f"no call {linkedid}"}, 404)
            await record_request(conn, request, "call.viewed", subject=f"call:{linkedid}")
            events = await store.timeline(conn, linkedid)
            files = await recordings_of_call(conn, linkedid)
    except asyncpg.QueryCanceledError:
        return _busy("the query took longer than the statement timeout")
    except asyncio.TimeoutError:
        return _busy("every database connection of the API is busy")
    return json_response({"call": dict(call), "timeline": [_event(e) for e in events],
                          "recordings": [dict(f) for f in files]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{linkedid}", show_call)

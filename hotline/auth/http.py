"""Admins read the audit log."""

from __future__ import annotations

from aiohttp import web

from hotline.app import CORE
from hotline.auth import audit
from hotline.auth.roles import Role, requires
from hotline.http import json_response

MAX_AUDIT_ROWS = 1000


@requires(Role.ADMIN)
async def audit_log(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "100")
    if not (raw.isascii() and raw.isdecimal()) or not 1 <= int(raw) <= MAX_AUDIT_ROWS:
        return json_response({"error": f"limit must be a whole number from 1 to {MAX_AUDIT_ROWS}"}, 400)
    async with request.app[CORE].api_pool.acquire() as conn:
        rows = await audit.recent(conn, int(raw))
        await audit.record_request(conn, request, "audit.viewed")
    return json_response({"audit": [dict(r) for r in rows]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/audit", audit_log)

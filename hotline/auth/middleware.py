"""The check in front of every route: who is asking, and may they.

Deny by default: a route must declare the least role it needs
(:func:`hotline.auth.roles.requires`) or that it is public. Unknown or revoked
credentials get 401, a role too low 403, a route that declares nothing 403
(and an error in the log: a bug, found by the first request, not left open).
"""

from __future__ import annotations

from typing import Awaitable, Callable

import asyncpg
from aiohttp import web

from hotline.auth import tokens
from hotline.auth.roles import PUBLIC, Identity, Role, needed
from hotline.http import json_response
from hotline.logs import get_logger

log = get_logger(__name__)

IDENTITY = web.RequestKey("identity", Identity)   # who an admitted request is
POOL_TIMEOUT = 2.0


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def _identify(request: web.Request, pool: asyncpg.Pool) -> Identity | None:
    token = _bearer(request)
    if token is None:
        return None
    async with pool.acquire(timeout=POOL_TIMEOUT) as conn:
        return await tokens.identify(conn, token)


def authorise(pool_of: Callable[[], asyncpg.Pool]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware; ``pool_of()`` gives the database pool once the core is open."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        match = request.match_info
        if match.http_exception is not None:       # 404 / 405: nothing to protect
            return await handler(request)
        if isinstance(match.route.resource, web.StaticResource):
            return await handler(request)          # the console's own assets
        needs = needed(match.handler)
        if needs == PUBLIC:
            return await handler(request)
        if not isinstance(needs, Role):
            log.error("auth.route_undeclared", path=request.path, method=request.method)
            return json_response({"error": "this route declares no role"}, 403)
        try:
            identity = await _identify(request, pool_of())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.error("auth.unavailable", error=repr(exc))
            return json_response({"error": "cannot check credentials now"}, 503)
        if identity is None:
            log.warning("auth.rejected", path=request.path, address=request.remote,
                        reason="no credentials" if _bearer(request) is None else "unknown or revoked token")
            response = json_response({"error": "authentication required"}, 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="hotline"'
            return response
        if not identity.role.admits(needs):
            log.warning("auth.forbidden", path=request.path, actor=identity.actor, needs=needs.value)
            return json_response({"error": f"needs the {needs.value} role"}, 403)
        request[IDENTITY] = identity
        return await handler(request)

    return middleware

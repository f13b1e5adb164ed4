"""The check in front of every route: who is asking, and may they.

Deny by default: a route must declare the least role it needs
(:func:`hotline.auth.roles.requires`) or that it is public. Unknown or revoked
credentials get 401, a role too low 403, a route that declares nothing 403
(and an error in the log: a bug, found by the first request, not left open).

Two kinds of credentials lead to the same :class:`Identity` in
``request[IDENTITY]``: an API token (``Authorization: Bearer``, for machines)
or a person's session cookie (:mod:`hotline.auth.sessions`). A request that
presents a bearer token is judged by it alone. A request made with a session
must also carry the session's CSRF token when it changes something
(POST/PUT/PATCH/DELETE: header ``X-CSRF-Token`` or form field ``csrf_token``),
and a session's state-changing or WebSocket request whose ``Origin`` is
another site's is refused; bearer clients are exempt (a browser never adds a
bearer token by itself, so no other site can make it send one).
Routes marked :func:`~hotline.auth.roles.page` send a browser without a
session to the login page and answer refusals with a page.
"""

from __future__ import annotations

import hmac
from typing import Awaitable, Callable
from urllib.parse import quote, urlsplit

import asyncpg
from aiohttp import hdrs, web

from hotline.auth import audit, sessions, tokens
from hotline.auth.roles import PUBLIC, Identity, Role, is_page, needed
from hotline.auth.sessions import Session
from hotline.http import json_response
from hotline.logs import get_logger
from hotline.settings import WebSettings

log = get_logger(__name__)

IDENTITY = web.RequestKey("identity", Identity)   # who an admitted request is
SESSION = web.RequestKey("session", Session)      # set only when a person's session admitted it
POOL_TIMEOUT = 2.0
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def _identify(request: web.Request, pool: asyncpg.Pool,
                    web_settings: WebSettings) -> tuple[Identity | None, Session | None]:
    token = _bearer(request)
    if token is None and "Authorization" in request.headers:
        return None, None            # some other scheme: refused, not silently ignored
    cookie = sessions.cookie_value(request)
    if token is None and cookie is None:
        return None, None
    async with pool.acquire(timeout=POOL_TIMEOUT) as conn:
        if token is not None:
            return await tokens.identify(conn, token), None
        session = await sessions.lookup(conn, cookie, web_settings)
    return (session.identity, session) if session is not None else (None, None)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _foreign_origin(request: web.Request) -> bool:
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc != request.host


async def _csrf_token_sent(request: web.Request) -> str | None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in FORM_TYPES:
        form = await request.post()          # kept by aiohttp: the handler reads it again
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent


async def _csrf_refusal(request: web.Request, session: Session) -> str | None:
    """Why a session's request is refused as a possible forgery, or None."""
    websocket = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    if request.method not in UNSAFE_METHODS and not websocket:
        return None
    if _foreign_origin(request):
        return "foreign origin"
    if websocket:
        return None
    sent = await _csrf_token_sent(request)
    if sent is None:
        return "CSRF token missing"
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        return "CSRF token wrong"
    return None


async def _refuse(request: web.Request, page: bool, status: int, message: str, title: str) -> web.StreamResponse:
    if page:
        from hotline.web import render_error   # the pages' base; imported late (it reads the app's settings)

        return await render_error(request, status, title)
    return json_response({"error": message}, status)


def authorise(pool_of: Callable[[], asyncpg.Pool],
              web_settings: WebSettings | None = None) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware; ``pool_of()`` gives the database pool once the core is open."""
    web_settings = web_settings or WebSettings()

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        match = request.match_info
        if match.http_exception is not None:       # 404 / 405: nothing to protect
            return await handler(request)
        if isinstance(match.route.resource, web.StaticResource):
            return await handler(request)          # the pages' own assets
        needs = needed(match.handler)
        if needs == PUBLIC:
            return await handler(request)
        page = is_page(match.handler)
        if not isinstance(needs, Role):
            log.error("auth.route_undeclared", path=request.path, method=request.method)
            return json_response({"error": "this route declares no role"}, 403)
        try:
            identity, session = await _identify(request, pool_of(), web_settings)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.error("auth.unavailable", error=repr(exc))
            return await _refuse(request, page, 503, "cannot check credentials now", "暂时无法验证身份，请稍后再试")
        if identity is None:
            log.warning("auth.rejected", path=request.path, address=request.remote,
                        reason=("no credentials" if _bearer(request) is None and sessions.cookie_value(request) is None
                                else "unknown or ended credentials"))
            if page and request.method in ("GET", "HEAD"):
                raise web.HTTPSeeOther(f"/login?next={quote(safe_next(request.path_qs), safe='')}")
            if page:
                raise web.HTTPSeeOther("/login")
            response = json_response({"error": "authentication required"}, 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="hotline"'
            return response
        if session is not None:
            refusal = await _csrf_refusal(request, session)
            if refusal is not None:
                log.warning("auth.csrf_refused", path=request.path, method=request.method,
                            actor=identity.actor, reason=refusal)
                async with pool_of().acquire(timeout=POOL_TIMEOUT) as conn:
                    await audit.record(conn, identity.actor, "csrf.refused", None, request.remote,
                                       {"path": request.path, "method": request.method, "reason": refusal})
                return await _refuse(request, page, 403, f"refused: {refusal}",
                                     "安全校验失败：页面已过期或请求来自其他网站，请刷新页面后重试")
        if not identity.role.admits(needs):
            log.warning("auth.forbidden", path=request.path, actor=identity.actor, needs=needs.value)
            return await _refuse(request, page, 403, f"needs the {needs.value} role", "您的账户无权访问此页面")
        request[IDENTITY] = identity
        if session is not None:
            request[SESSION] = session
        return await handler(request)

    return middleware

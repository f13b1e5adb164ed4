"""People's pages of the auth layer: log in, log out, the landing page, the
admins' audit log.

The login form is protected against login CSRF (another site logging a
browser in as someone else) by a double-submit token: ``GET /login`` sets a
random value in a SameSite=Strict cookie and the same in the form; ``POST
/login`` must bring both, equal. After login every state-changing request
carries the session's own token (:mod:`hotline.auth.middleware`).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from hotline.app import CORE
from hotline.auth import audit, sessions
from hotline.auth.login import Outcome, admin_exists, log_in
from hotline.auth.middleware import IDENTITY, POOL_TIMEOUT, SESSION, safe_next
from hotline.auth.passwords import PASSWORDS, PasswordsBusy
from hotline.auth.roles import Role, page, public, requires
from hotline.logs import get_logger
from hotline.web import add_nav, home_of, render

log = get_logger(__name__)

LOGIN_COOKIE = "hotline_login"     # the login form's double-submit token
AUDIT_PAGE_ROWS = 100
FIRST_ADMIN_COMMAND = "hotline agents add --role admin --login admin --name 管理员"   # asks for a password

MESSAGES = {
    Outcome.BAD_CREDENTIALS: "用户名或密码错误。",
    Outcome.LOCKED: "登录失败次数过多，已暂时锁定，请稍后再试。",
}


async def _login_form(request: web.Request, *, error: str | None = None, status: int = 200,
                      login: str = "") -> web.Response:
    core = request.app[CORE]
    async with core.api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
        no_admin = not await admin_exists(conn)
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {
        "error": error, "login": login, "login_token": token, "no_admin": no_admin,
        "first_admin_command": FIRST_ADMIN_COMMAND, "next": safe_next(request.query.get("next")),
        "logged_out": request.query.get("bye") == "1"}, status=status)
    response.set_cookie(LOGIN_COOKIE, token, path="/login", httponly=True, samesite="Strict",
                        secure=sessions.secure_cookie(request, core.settings.web))
    return response


@page
@public
async def login_page(request: web.Request) -> web.StreamResponse:
    cookie = sessions.cookie_value(request)
    if cookie:
        async with request.app[CORE].api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
            if await sessions.lookup(conn, cookie, request.app[CORE].settings.web) is not None:
                raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return await _login_form(request)


@page
@public
async def login_submit(request: web.Request) -> web.StreamResponse:
    core = request.app[CORE]
    form = await request.post()
    typed = str(form.get("login", ""))[:200]
    password = str(form.get("password", ""))
    expected = request.cookies.get(LOGIN_COOKIE, "")
    sent = str(form.get("login_token", ""))
    if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
        log.warning("auth.login_csrf_refused", address=request.remote)
        return await _login_form(request, error="登录页面已过期，请重新输入。", status=403, login=typed)
    try:
        attempt = await log_in(core.api_pool, request.app[PASSWORDS], core.settings.web, typed, password,
                               request.remote or "", request.headers.get("User-Agent"),
                               sessions.cookie_value(request))
    except PasswordsBusy:
        return await _login_form(request, error="系统繁忙，请稍后再试。", status=503, login=typed)
    if attempt.outcome is not Outcome.OK:
        status = 429 if attempt.outcome is Outcome.LOCKED else 401
        return await _login_form(request, error=MESSAGES[attempt.outcome], status=status, login=typed)
    response = web.HTTPSeeOther(safe_next(str(form.get("next", "/"))))
    sessions.set_cookie(response, request, attempt.cookie or "", core.settings.web)
    response.del_cookie(LOGIN_COOKIE, path="/login")
    raise response


@page
@requires(Role.AGENT)
async def logout(request: web.Request) -> web.StreamResponse:
    core = request.app[CORE]
    async with core.api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
        async with conn.transaction():
            await sessions.end(conn, sessions.cookie_value(request) or "")
            await audit.record_request(conn, request, "logout", f"account:{request[IDENTITY].id}")
    log.info("auth.logout", actor=request[IDENTITY].actor)
    response = web.HTTPSeeOther("/login?bye=1")
    sessions.clear_cookie(response, request, core.settings.web)
    raise response


@page
@requires(Role.AGENT)
async def landing(request: web.Request) -> web.Response:
    home = home_of(request.app, request[IDENTITY].role)
    if home is not None:
        raise web.HTTPSeeOther(home)
    session = request.get(SESSION)
    return render(request, "landing.html", {"expires_at": _local(request, session.expires_at) if session else None})


def _local(request: web.Request, at: datetime) -> str:
    zone = ZoneInfo(request.app[CORE].settings.web.time_zone)
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


@page
@requires(Role.ADMIN)
async def audit_page(request: web.Request) -> web.Response:
    raw_before = request.query.get("before", "")
    before = int(raw_before) if raw_before.isascii() and raw_before.isdecimal() and len(raw_before) < 19 else None
    text = request.query.get("q", "").strip()[:100] or None
    async with request.app[CORE].api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
        rows = await audit.page(conn, AUDIT_PAGE_ROWS, before, text)
        await audit.record_request(conn, request, "audit.viewed", detail={"before": before, "q": text})
    entries = [{**dict(r), "at": _local(request, r["at"])} for r in rows]
    older = rows[-1]["id"] if len(rows) == AUDIT_PAGE_ROWS else None
    return render(request, "audit.html", {"entries": entries, "q": text or "", "older": older})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", landing)
    app.router.add_get("/admin/audit", audit_page)
    add_nav(app, "审计日志", "/admin/audit", Role.ADMIN)

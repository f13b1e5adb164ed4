"""The admins' pages for accounts: list, create, disable or enable, reset a
password, change a role. Each change is a form posted with the session's CSRF
token (checked by the auth middleware) and answered with a redirect, so a
reload never repeats it."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from agents.accounts import rules, service, store
from agents.accounts.rules import AccountError
from hotline.app import CORE
from hotline.auth.middleware import IDENTITY, POOL_TIMEOUT
from hotline.auth.passwords import PASSWORDS, PasswordsBusy
from hotline.auth.roles import Role, page, requires
from hotline.web import add_nav, add_templates, render, render_error

DONE = {
    "created": "账户已创建。", "disabled": "账户已停用，其登录会话已全部结束。", "enabled": "账户已启用。",
    "password": "密码已重置，该账户的登录会话已全部结束。", "role": "角色已修改。",
}


def _departments(request: web.Request) -> list[dict]:
    settings = request.app[CORE].settings
    return [{"code": d.code, "name": d.name, "queue": d.queue, "extensions": d.extensions}
            for d in settings.departments]


async def _list_page(request: web.Request, *, error: str | None = None, form: dict | None = None,
                     status: int = 200) -> web.Response:
    async with request.app[CORE].api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
        accounts = await store.listing(conn)
    return render(request, "accounts.html", {
        "accounts": accounts, "departments": _departments(request), "roles": list(Role), "error": error,
        "form": form or {}, "done": DONE.get(request.query.get("done", "")),
        "min_length": request.app[PASSWORDS].min_length}, status=status)


@page
@requires(Role.ADMIN)
async def accounts_page(request: web.Request) -> web.Response:
    return await _list_page(request)


def _field(form, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


async def _new_hash(request: web.Request, form) -> str:
    password = _field(form, "password")
    if password != _field(form, "password_again"):
        raise AccountError("the two passwords differ", "两次输入的密码不一致")
    try:
        return await service.password_hash(request.app[PASSWORDS], password)
    except PasswordsBusy as exc:
        raise AccountError("busy", "系统繁忙，请稍后再试") from exc


@page
@requires(Role.ADMIN)
async def create_account(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    kept = {name: _field(form, name) for name in ("login", "name", "extension", "role", "queues")}
    try:
        role = Role(kept["role"]) if kept["role"] in {r.value for r in Role} else None
        if role is None:
            raise AccountError("no such role", "请选择角色")
        queues = rules.parse_queues(kept["queues"]) if kept["queues"].strip() else None
        draft = rules.draft(request.app[CORE].settings, kept["login"], kept["name"], kept["extension"], role, queues)
        hashed = await _new_hash(request, form)     # slow: before taking a database connection
        async with request.app[CORE].api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
            account = await service.create(conn, draft, hashed, request[IDENTITY].actor, request.remote)
    except AccountError as exc:
        return await _list_page(request, error=exc.zh, form=kept, status=400)
    raise web.HTTPSeeOther(f"/admin/accounts/{account.id}?done=created")


async def _detail_page(request: web.Request, account_id: int, *, error: str | None = None,
                       status: int = 200) -> web.Response:
    async with request.app[CORE].api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
        account = await store.by_id(conn, account_id)
    if account is None:
        return await render_error(request, 404, "没有这个账户。")
    return render(request, "account.html", {
        "account": account, "roles": list(Role), "error": error, "done": DONE.get(request.query.get("done", "")),
        "min_length": request.app[PASSWORDS].min_length}, status=status)


def _account_id(request: web.Request) -> int:
    return int(request.match_info["id"])


@page
@requires(Role.ADMIN)
async def account_page(request: web.Request) -> web.Response:
    return await _detail_page(request, _account_id(request))


@page
@requires(Role.ADMIN)
async def change_account(request: web.Request) -> web.StreamResponse:
    """POST /admin/accounts/{id}/{change}: disable, enable, password or role."""
    account_id, change = _account_id(request), request.match_info["change"]
    form = await request.post()
    actor, address = request[IDENTITY].actor, request.remote
    try:
        hashed = await _new_hash(request, form) if change == "password" else None
        async with request.app[CORE].api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
            if change in ("disable", "enable"):
                await service.set_disabled(conn, account_id, change == "disable", actor, address)
            elif change == "password":
                await service.reset_password(conn, account_id, hashed or "", actor, address)
            else:
                role = _field(form, "role")
                if role not in {r.value for r in Role}:
                    raise AccountError("no such role", "请选择角色")
                await service.change_role(conn, account_id, Role(role), actor, address)
    except AccountError as exc:
        return await _detail_page(request, account_id, error=exc.zh, status=400)
    done = {"disable": "disabled", "enable": "enabled"}.get(change, change)
    raise web.HTTPSeeOther(f"/admin/accounts/{account_id}?done={done}")


def add_routes(app: web.Application) -> None:
    add_templates(app, Path(__file__).parent / "templates")
    app.router.add_get("/admin/accounts", accounts_page)
    app.router.add_post("/admin/accounts", create_account)
    app.router.add_get(r"/admin/accounts/{id:\d{1,18}}", account_page)
    app.router.add_post(r"/admin/accounts/{id:\d{1,18}}/{change:disable|enable|password|role}", change_account)
    add_nav(app, "账户管理", "/admin/accounts", Role.ADMIN)

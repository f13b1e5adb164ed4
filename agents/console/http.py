"""The console's routes: the page, its WebSocket, and what an agent does from it.

Every route needs the agent role (supervisors and admins with an extension may
use a console too) and a person's session: the console acts for the account's
seat (its extension and queues), which a machine's API token does not have.
Actions are JSON POSTs carrying the session's CSRF token (``X-CSRF-Token``,
checked by the auth middleware); each queue login/logout, pause, unpause,
transfer and disposition is an audit row, whatever its outcome.

``/ws/console`` is opened with the session cookie from this site only (the
middleware refuses another ``Origin``) and checks the session again every
``[console] session_check_interval`` seconds: a session that ended (logout,
expiry, idle timeout, the account disabled or its password reset) closes it
with code 4401. A disabled account's phone is also logged out of its queues.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import asyncpg
from aiohttp import WSMsgType, web

from agents.accounts import store as accounts
from agents.console import dispositions, store
from agents.console.dispositions import DispositionError
from agents.console.service import STOPPING, ConsoleClient, Consoles
from agents.seat import AgentSeat
from agents.setup import AGENT_DESK
from agents.transfer import TargetKind, TransferTarget
from hotline.app import CORE
from hotline.auth import audit, sessions
from hotline.auth.middleware import IDENTITY, POOL_TIMEOUT, SESSION
from hotline.auth.roles import Role, page, requires
from hotline.facts import ChangeSet
from hotline.http import json_response
from hotline.logs import bound_call, get_logger
from hotline.web import render
from knowledge import store as knowledge

log = get_logger(__name__)

CONSOLES = web.AppKey("consoles", Consoles)
SESSION_ENDED = 4401        # WebSocket close code: log in again
GOING_AWAY = 1001
MAX_BODY = 16 * 1024


class Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


async def _seat(request: web.Request) -> AgentSeat:
    """The seat of the person asking (their account's extension and queues)."""
    identity = request[IDENTITY]
    if identity.kind != "account" or request.get(SESSION) is None:
        raise Refusal(403, "坐席工作台只能由个人账户登录使用")
    async with request.app[CORE].api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
        account = await accounts.by_id(conn, identity.id)
    if account is None or account.disabled:
        raise Refusal(403, "账户不存在或已停用")
    if not account.extension:
        raise Refusal(409, "此账户没有分机号，不能使用坐席工作台")
    return AgentSeat(account.id, account.name, account.extension, tuple((q.queue, q.penalty) for q in account.queues))


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refusal(413, "请求内容过大")
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        raise Refusal(400, "请求格式不正确") from None
    if not isinstance(body, dict):
        raise Refusal(400, "请求格式不正确")
    return body


async def _audit(request: web.Request, action: str, subject: str | None, detail: dict[str, Any]) -> None:
    async with request.app[CORE].api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
        await audit.record_request(conn, request, action, subject, detail)


def _refused(refusal: Refusal) -> web.Response:
    return json_response({"ok": False, "message": refusal.message}, refusal.status)


# -- the page ------------------------------------------------------------------------------

@page
@requires(Role.AGENT)
async def console_page(request: web.Request) -> web.Response:
    try:
        seat = await _seat(request)
    except Refusal as refusal:
        return render(request, "console.html", {"seat": None, "problem": refusal.message}, status=refusal.status)
    return render(request, "console.html", {"seat": seat, "problem": None})


# -- the WebSocket --------------------------------------------------------------------------

@requires(Role.AGENT)
async def console_socket(request: web.Request) -> web.StreamResponse:
    """This agent's messages (``hello``, ``state``, ``ring_no_answer``,
    ``screen_pop``) and the queue panel (``panel``), as JSON text frames."""
    try:
        seat = await _seat(request)
    except Refusal as refusal:
        return _refused(refusal)
    session = request[SESSION]
    socket = web.WebSocketResponse(heartbeat=30.0, compress=False)
    await socket.prepare(request)
    await _audit(request, "console.opened", f"account:{seat.account_id}", {"extension": seat.extension})
    consoles = request.app[CONSOLES]
    client = consoles.attach(seat, request[IDENTITY].role, session.id, request.remote)
    log.info("console.opened", interface=seat.interface, actor=request[IDENTITY].actor)
    reader = asyncio.create_task(_read_until_closed(socket, client))
    watcher = asyncio.create_task(_watch_session(request, socket, client))
    try:
        while True:
            data = await client.outbox.next_message()
            if data is None:
                if not socket.closed:
                    reason = client.outbox.dropped_reason or ""
                    code = (SESSION_ENDED if reason.startswith("session")
                            else GOING_AWAY if reason == STOPPING else 1013)
                    await socket.close(code=code, message=reason.encode()[:120])
                break
            await socket.send_frame(data, WSMsgType.TEXT)
    except (ConnectionResetError, RuntimeError):
        pass     # the browser went away mid-send
    finally:
        consoles.detach(client)
        reader.cancel()
        watcher.cancel()
        log.info("console.closed", interface=seat.interface, reason=client.outbox.dropped_reason)
    return socket


async def _read_until_closed(socket: web.WebSocketResponse, client: ConsoleClient) -> None:
    """The page sends nothing on its socket (actions are POSTs); reading is how
    its close, or a dead connection through the heartbeat, is noticed."""
    async for _message in socket:
        pass
    client.outbox.drop("closed by the browser")


async def _watch_session(request: web.Request, socket: web.WebSocketResponse, client: ConsoleClient) -> None:
    core = request.app[CORE]
    interval = core.settings.console.session_check_interval
    while not socket.closed:
        await asyncio.sleep(interval)
        try:
            async with core.api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
                identity = await sessions.still_live(conn, client.session_id, core.settings.web)
                disabled = identity is None and await conn.fetchval(
                    "SELECT disabled FROM accounts WHERE id = $1", client.seat.account_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
            log.warning("console.session_check_failed", interface=client.interface, error=repr(exc))
            continue       # cannot tell now: the next check decides
        if identity is not None:
            client.role = identity.role          # a role changed by an admin shows numbers accordingly
            continue
        log.info("console.session_ended", interface=client.interface, account=client.seat.account_id,
                 disabled=bool(disabled))
        if disabled:
            await _log_out_disabled(request, client)
        client.outbox.drop("session ended" + (": account disabled" if disabled else ""))
        return


async def _log_out_disabled(request: web.Request, client: ConsoleClient) -> None:
    """A disabled person takes no more calls: their phone leaves its queues
    (unless someone else has logged in at that phone since)."""
    desk = request.app[AGENT_DESK]
    seated = desk.seat_of(client.interface)
    if seated is not None and seated.account_id != client.seat.account_id:
        return
    report = await desk.logout(client.seat)
    async with request.app[CORE].api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
        await audit.record(conn, "system:console", "agent.queue_logout", f"account:{client.seat.account_id}",
                           None, {"extension": client.seat.extension, "why": "account disabled",
                                  **report.as_json()})


# -- the agent's actions ---------------------------------------------------------------------

def _report_message(ok: bool, done: str, report_error: str | None, failures: list[str]) -> str:
    if ok:
        return done
    return "操作未完成：" + (report_error or "；".join(failures) or "未知原因")


async def _queue_action(request: web.Request, operation: str) -> web.Response:
    try:
        seat = await _seat(request)
        body = await _body(request)
    except Refusal as refusal:
        return _refused(refusal)
    desk = request.app[AGENT_DESK]
    reason = body.get("reason") if isinstance(body.get("reason"), str) else None
    if operation == "login":
        paused = bool(body.get("paused"))
        report = await desk.login(seat, paused=paused, reason=reason if paused else None)
        action, done = "agent.queue_login", "已登录队列"
    elif operation == "logout":
        report = await desk.logout(seat)
        action, done = "agent.queue_logout", "已退出队列"
    elif operation == "pause":
        report = await desk.pause(seat, reason or "")
        action, done = "agent.paused", f"已小休：{reason}"
    else:
        report = await desk.unpause(seat)
        action, done = "agent.unpaused", "已恢复接听"
    detail = {"extension": seat.extension, **report.as_json()}
    if reason and operation in ("pause", "login"):
        detail["reason"] = reason
    await _audit(request, action, f"account:{seat.account_id}", detail)
    message = _report_message(report.ok, done, report.error, [f.message for f in report.failures])
    return json_response({"ok": report.ok, "message": message, "report": report.as_json()},
                         200 if report.ok else 409)


def _queue_route(operation: str):
    """The route of one queue operation (login, logout, pause, unpause)."""
    @requires(Role.AGENT)
    async def route(request: web.Request) -> web.Response:
        return await _queue_action(request, operation)

    route.__name__ = route.__qualname__ = f"queue_{operation}"
    return route


@requires(Role.AGENT)
async def wrapup_done(request: web.Request) -> web.Response:
    try:
        seat = await _seat(request)
    except Refusal as refusal:
        return _refused(refusal)
    state = request.app[AGENT_DESK].finish_wrapup(seat)
    return json_response({"ok": True, "message": "整理完成", "agent": state.as_json()["label"]})


@requires(Role.AGENT)
async def transfer(request: web.Request) -> web.Response:
    try:
        seat = await _seat(request)
        body = await _body(request)
        kind = TargetKind(body.get("kind"))
        value = body.get("target")
        if not isinstance(value, str) or not value.strip():
            raise Refusal(400, "请选择转接目标")
    except ValueError:
        return _refused(Refusal(400, "转接目标只能是部门队列或分机"))
    except Refusal as refusal:
        return _refused(refusal)
    target = TransferTarget(kind, value.strip())
    report = await request.app[AGENT_DESK].transfer(seat, target)
    await _audit(request, "call.transferred" if report.ok else "call.transfer_failed",
                 f"call:{report.linkedid}" if report.linkedid else None,
                 {"extension": seat.extension, **report.as_json()})
    message = "已转接" if report.ok else f"转接失败：{report.message}"
    return json_response({"ok": report.ok, "message": message, "report": report.as_json()},
                         200 if report.ok else 409)


@requires(Role.AGENT)
async def dispose(request: web.Request) -> web.Response:
    """The agent's disposition of a call they answered: stored, audited, and a
    ``call.disposed`` row in the call's timeline (what tickets follow)."""
    try:
        seat = await _seat(request)
        disposition = dispositions.parse(await _body(request))
    except Refusal as refusal:
        return _refused(refusal)
    except DispositionError as exc:
        return json_response({"ok": False, "message": exc.chinese}, 400)
    core = request.app[CORE]
    assert seat.account_id is not None
    with bound_call(disposition.linkedid):
        async with core.api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
            uniqueid = await store.answered_by(conn, disposition.linkedid, seat.interface)
            if uniqueid is None:
                return json_response({"ok": False, "message": "只能登记本分机接听过的通话"}, 409)
            question = None
            if disposition.knowledge_item_id:
                question = await store.knowledge_question(conn, disposition.knowledge_item_id)
                if question is None:
                    return json_response({"ok": False, "message": "知识条目不存在"}, 400)
            async with conn.transaction():
                saved = await store.save_disposition(conn, disposition, uniqueid, seat.account_id,
                                                     seat.interface, seat.name, question)
                await audit.record_request(conn, request, "call.disposed", f"call:{disposition.linkedid}", {
                    "disposition_id": saved.id, "outcome": saved.outcome, "previous_outcome": saved.previous_outcome,
                    "knowledge_item_id": saved.knowledge_item_id, "note_chars": len(saved.note),
                    "extension": seat.extension})
        core.writer.submit(ChangeSet(timeline=[dispositions.timeline_entry(
            saved.id, disposition, uniqueid, seat.account_id, seat.name, seat.interface,
            datetime.now(timezone.utc), saved.previous_outcome)]))
        log.info("console.disposed", outcome=saved.outcome, interface=seat.interface, disposition=saved.id)
    return json_response({"ok": True, "message": f"已登记：{disposition.outcome.label}",
                          "disposition": saved.as_json()})


@requires(Role.AGENT)
async def knowledge_search(request: web.Request) -> web.Response:
    """``?q=...[&department=code]``: knowledge items, best first."""
    query = request.query.get("q", "")[:100]
    department = request.query.get("department") or None
    limit = request.app[CORE].settings.console.search_limit
    async with request.app[CORE].api_pool.acquire(timeout=POOL_TIMEOUT) as conn:
        hits = await knowledge.search(conn, query, department=department, limit=limit)
    return json_response({"query": query, "items": [
        {**h.item.to_dict(), "score": round(h.score, 2), "matched": h.matched} for h in hits]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console", console_page)
    app.router.add_get("/ws/console", console_socket)
    for path, operation in (("queues/login", "login"), ("queues/logout", "logout"), ("pause", "pause"),
                            ("unpause", "unpause")):
        app.router.add_post(f"/api/console/{path}", _queue_route(operation))
    app.router.add_post("/api/console/wrapup/done", wrapup_done)
    app.router.add_post("/api/console/transfer", transfer)
    app.router.add_post("/api/console/disposition", dispose)
    app.router.add_get("/api/knowledge/search", knowledge_search)

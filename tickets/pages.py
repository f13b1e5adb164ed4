"""The tickets' pages (Simplified Chinese, server-rendered): the list with its
filters, one ticket with its deadlines, timeline, 12345 dispatches and call
(the record, what the voice menu heard, the recordings to play), and the
forms that change it.

The same rules as the JSON routes (:mod:`tickets.http`): agents see and move
the tickets they opened or that are assigned to them, supervisors every
ticket; assigning and dispatching to 12345 need a supervisor. Which moves a
ticket offers comes from the transition table (:data:`tickets.model.TRANSITIONS`),
and the service refuses any other. Each change is a form posted with the
session's CSRF token and answered with a redirect (a reload never repeats it);
every view, listing and change is in the audit log, under the same actions as
the JSON routes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Mapping

import asyncpg
from aiohttp import web

from agents.accounts.store import by_id as account_by_id
from agents.accounts.store import listing as account_listing
from hotline.app import CORE
from hotline.auth.audit import record_request
from hotline.auth.middleware import IDENTITY
from hotline.auth.roles import Role, page, requires
from hotline.web import add_nav, add_templates, form_text, render, render_error
from tickets import store
from tickets.access import BadRequest, filters, only_visible, visible, whole
from tickets.http import TICKETS
from tickets.ledger import deadline_status
from tickets.model import (
    DEADLINE_LABELS,
    DUE_COLUMN,
    MET_COLUMN,
    SOURCE_LABELS,
    STATE_LABELS,
    TRANSITIONS,
    Deadline,
    IllegalTransition,
    TicketState,
)
from tickets.service import TicketInputError, TicketNotFound, TicketService

PAGE_ROWS = 50

EVENT_LABELS = {
    "opened": "受理", "transition": "状态变更", "assigned": "分派", "note": "备注",
    "deadline.reminder": "时限提醒", "deadline.escalated": "超时上报",
    "dispatch.accepted": "12345已受理", "dispatch.rejected": "12345退回", "dispatch.answered": "12345已答复",
    "dispatch.failed": "12345拒收", "knowledge_gap.flagged": "标记知识库缺失",
    "knowledge_gap.answered": "知识库已补充", "callback.flagged": "需回拨", "survey": "满意度评价",
}
OUTCOME_LABELS = {
    "answered": "人工已接听", "abandoned": "排队中放弃", "unanswered": "排队未接通", "lost": "通话中断",
    "ended_in_menu": "在语音导航中结束", "in_progress": "通话中",
}
DISPATCH_LABELS = {"pending": "待发送", "accepted": "已受理", "rejected": "已退回", "answered": "已答复",
                   "failed": "被拒收"}
DONE = {
    "moved": "状态已更新。", "assigned": "已分派。", "noted": "备注已添加。",
    "dispatched": "已派发至12345，发送结果见下方派发记录。", "gap": "已标记为知识库缺失，补充时限已开始计算。",
}


def _service(request: web.Request) -> TicketService:
    return request.app[TICKETS]


def _reading(request: web.Request):
    core = request.app[CORE]
    return core.api_pool.acquire(timeout=core.settings.database.connect_timeout)


def _ticket_id(request: web.Request) -> int:
    return int(request.match_info["ticket_id"])


def _departments(service: TicketService) -> list[dict[str, str]]:
    return [{"code": code, "name": name} for code, name in service.department_names.items()]


async def _people(conn: asyncpg.Connection) -> dict[int, Any]:
    """Every account by id (the assignee's name on the pages)."""
    return {a.id: a for a in await account_listing(conn)}


@page
@requires(Role.AGENT)
async def tickets_page(request: web.Request) -> web.Response:
    service = _service(request)
    identity = request[IDENTITY]
    try:
        chosen = filters(request.query, service.deadlines.tz, service.department_names)
        before = whole(request.query.get("before"), "before")
    except BadRequest as exc:
        return await render_error(request, 400, f"筛选条件有误：{exc}")
    async with _reading(request) as conn:
        found = await store.find_tickets(conn, **chosen, **only_visible(identity), limit=PAGE_ROWS,
                                         before_id=before)
        people = await _people(conn)
        now = await store.now(conn)
        await record_request(conn, request, "tickets.listed", detail={"count": len(found), "page": True})
    rows = [{**t, "state_label": STATE_LABELS[TicketState(t["state"])],
             "overdue": any(deadline_status(t, d, now) == "已超期" for d in Deadline)} for t in found]
    kept = {k: v for k, v in request.query.items() if k != "before" and v}
    return render(request, "tickets.html", {
        "tickets": rows, "people": people, "departments": _departments(service),
        "department_names": service.department_names, "states": list(TicketState),
        "state_labels": STATE_LABELS, "source_labels": {s.value: l for s, l in SOURCE_LABELS.items()},
        "query": request.query, "kept": kept,
        "older": found[-1]["id"] if len(found) == PAGE_ROWS else None,
        "supervisor": identity.role.admits(Role.SUPERVISOR)})


async def _visible_ticket(request: web.Request, conn: asyncpg.Connection) -> dict[str, Any]:
    ticket = await store.ticket(conn, _ticket_id(request))
    if ticket is None or not visible(request[IDENTITY], ticket):
        raise TicketNotFound(_ticket_id(request))      # an agent cannot probe which tickets exist
    return ticket


def _deadlines(ticket: Mapping[str, Any], now) -> list[dict[str, Any]]:
    return [{"label": DEADLINE_LABELS[d], "due": ticket[DUE_COLUMN[d]], "met": ticket[MET_COLUMN[d]],
             "status": deadline_status(ticket, d, now)}
            for d in Deadline if ticket[DUE_COLUMN[d]] is not None]


def _moves(state: TicketState) -> list[dict[str, str]]:
    """The moves a person makes with a button: the table's, in the states' order;
    已派发12345 has a form of its own (the outbox, a supervisor's)."""
    allowed = [s for s in TicketState if s in TRANSITIONS[state] and s is not TicketState.DISPATCHED]
    return [{"to": s.value, "label": s.label} for s in allowed]


async def _ticket_view(request: web.Request, *, error: str | None = None, status: int = 200,
                       form: Mapping[str, str] | None = None) -> web.Response:
    service = _service(request)
    identity = request[IDENTITY]
    try:
        async with _reading(request) as conn:
            ticket = await _visible_ticket(request, conn)
            view = await service.view(ticket["id"], conn)
            people = await _people(conn)
            now = await store.now(conn)
            await record_request(conn, request, "ticket.viewed", f"ticket:{ticket['number']}", {"page": True})
    except TicketNotFound:
        return await render_error(request, 404, "没有这个工单，或您无权查看。")
    ticket = view["ticket"]
    state = TicketState(ticket["state"])
    supervisor = identity.role.admits(Role.SUPERVISOR)
    return render(request, "ticket.html", {
        **view, "ticket": ticket, "people": people, "deadlines": _deadlines(ticket, now),
        "moves": _moves(state), "can_dispatch": supervisor and TicketState.DISPATCHED in TRANSITIONS[state],
        "supervisor": supervisor, "departments": _departments(service),
        "department_names": service.department_names, "event_labels": EVENT_LABELS,
        "state_labels": {s.value: s.label for s in TicketState}, "outcome_labels": OUTCOME_LABELS,
        "dispatch_labels": DISPATCH_LABELS, "done": DONE.get(request.query.get("done", "")),
        "error": error, "form": form or {}, "open": ticket["open"],
    }, status=status)


@page
@requires(Role.AGENT)
async def ticket_page(request: web.Request) -> web.Response:
    return await _ticket_view(request)


async def _change(request: web.Request, change: str, form: Mapping[str, Any],
                  ticket: Mapping[str, Any]) -> tuple[str, dict[str, Any], Mapping[str, Any]]:
    """Apply one form: (audit action, its detail, the ticket after)."""
    service = _service(request)
    identity = request[IDENTITY]
    actor = identity.actor
    reason = form_text(form, "reason")
    supervisor = identity.role.admits(Role.SUPERVISOR)
    if change in ("assign", "dispatch") and not supervisor:
        raise PermissionError
    if change == "move":
        try:
            to = TicketState(form_text(form, "to"))
        except ValueError:
            raise TicketInputError("请选择要转到的状态") from None
        if to is TicketState.DISPATCHED:
            raise PermissionError      # through the dispatch form, a supervisor's
        moved = await service.transition(ticket["id"], to, actor, reason)
        return "ticket.moved", {"from": ticket["state"], "to": moved["state"]}, moved
    if change == "assign":
        department = form_text(form, "department") or None
        account = form_text(form, "account_id")
        account_id = int(account) if account.isascii() and account.isdecimal() and len(account) < 19 else None
        if account and account_id is None:
            raise TicketInputError("no such account")
        if account_id is not None:
            async with _reading(request) as conn:
                person = await account_by_id(conn, account_id)
            if person is None or person.disabled or person.role is Role.ADMIN:
                raise TicketInputError("no such account")
        assigned = await service.assign(ticket["id"], actor, department=department, account_id=account_id,
                                        reason=reason or None)
        return "ticket.assigned", {"department": assigned["department"],
                                   "account_id": assigned["assignee_account_id"]}, assigned
    if change == "dispatch":
        dispatched = await service.dispatch(ticket["id"], actor, reason)
        return "ticket.dispatched", {}, dispatched
    if change == "note":
        noted = await service.add_note(ticket["id"], actor, form_text(form, "text"))
        return "ticket.noted", {}, noted
    if ticket["state"] == TicketState.CLOSED.value:
        raise TicketInputError("closed")
    flagged = await service.flag_knowledge_gap(ticket["id"], actor, reason)
    return "ticket.knowledge_gap_flagged", {"knowledge_due": flagged["knowledge_due"]}, flagged


MESSAGES = {
    "a reason is required": "请填写原因。",
    "a note needs text": "请填写备注内容。",
    "assign to a department, an agent's account, or both": "请选择承办部门或承办人。",
    "no such account": "承办人无效：请选择一个在用的坐席或班长账户。",
    "closed": "已办结的工单不能标记为知识库缺失；如需处理，请先重新打开。",
}


@page
@requires(Role.AGENT)
async def ticket_change(request: web.Request) -> web.StreamResponse:
    """POST /tickets/{id}/{move|assign|dispatch|note|gap}."""
    change = request.match_info["action"]
    form = await request.post()
    kept = {name: form_text(form, name) for name in ("reason", "text", "department", "account_id")}
    try:
        async with _reading(request) as conn:
            ticket = await _visible_ticket(request, conn)
        action, detail, after = await _change(request, change, form, ticket)
    except TicketNotFound:
        return await render_error(request, 404, "没有这个工单，或您无权查看。")
    except PermissionError:
        return await _ticket_view(request, error="此操作需要班长权限。", status=403, form=kept)
    except IllegalTransition as exc:
        allowed = "、".join(s.label for s in TicketState if s in exc.allowed)
        return await _ticket_view(request, status=409, form=kept,
                                  error=f"工单当前为“{exc.current.label}”，不能转为“{exc.wanted.label}”（可转为：{allowed}）。")
    except TicketInputError as exc:
        return await _ticket_view(request, error=MESSAGES.get(str(exc), f"无法完成：{exc}"), status=400, form=kept)
    except (asyncpg.QueryCanceledError, asyncio.TimeoutError):
        return await render_error(request, 503, "系统繁忙，请稍后再试。")
    async with _reading(request) as conn:
        await record_request(conn, request, action, f"ticket:{after['number']}", {**detail, "page": True})
    done = {"move": "moved", "assign": "assigned", "dispatch": "dispatched", "note": "noted"}.get(change, "gap")
    raise web.HTTPSeeOther(f"/tickets/{after['id']}?done={done}")


def add_routes(app: web.Application) -> None:
    add_templates(app, Path(__file__).parent / "templates")
    app.router.add_get("/tickets", tickets_page)
    app.router.add_get(r"/tickets/{ticket_id:\d{1,18}}", ticket_page)
    app.router.add_post(r"/tickets/{ticket_id:\d{1,18}}/{action:move|assign|dispatch|note|gap}", ticket_change)
    add_nav(app, "工单", "/tickets", Role.AGENT)

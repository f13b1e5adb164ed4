"""The tickets' JSON routes (pages come with the console), behind the role layer.

Agents open tickets (by hand, or from a call's disposition), see and move the
tickets they opened or that are assigned to their account; supervisors see
and change every ticket, assign, dispatch to 12345, export the ledger and read
the report. The 12345 platform posts its answers with a supervisor token.
Every read of a ticket or the ledger and every change is in the audit log.

| route | role | what |
|---|---|---|
| ``POST /api/tickets`` | agent | open by hand |
| ``POST /api/tickets/from-disposition`` | agent | a call marked 未解决 / 来电人不满意 |
| ``GET /api/tickets`` | agent | newest first: ``from``, ``to``, ``department``, ``state``, ``overdue``, ``assignee``, ``limit``, ``before`` |
| ``GET /api/tickets/overdue`` | supervisor | open tickets with a deadline passed unmet |
| ``GET /api/tickets/{id}`` | agent | the ticket, its timeline, dispatches, call, recordings, transcript |
| ``POST /api/tickets/{id}/transition`` | agent | ``{"to", "reason"}`` |
| ``POST /api/tickets/{id}/assign`` | supervisor | ``{"department", "account_id", "reason"}`` |
| ``POST /api/tickets/{id}/dispatch`` | supervisor | ``{"reason"}``: to 12345 through the outbox |
| ``POST /api/tickets/{id}/knowledge`` | supervisor | ``{"knowledge_item_id"}``: the gap's answer was added |
| ``POST /api/tickets/{id}/callback`` | agent | ``{"number", "extension"}`` (both optional): call the caller back |
| ``POST /api/tickets/12345/answers`` | supervisor | the platform's answer about a case |
| ``GET /api/tickets/ledger.csv``, ``.xlsx`` | supervisor | the ledger, filtered like the list |
| ``GET /api/tickets/report`` | supervisor | counts, deadlines met, the 12345 share against its goal |
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

import asyncpg
from aiohttp import web

from hotline.app import CORE
from hotline.auth.audit import record_request
from hotline.auth.middleware import IDENTITY
from hotline.auth.roles import Role, requires
from hotline.http import json_response
from reports.store import ticket_figures
from tickets import ledger, store
from tickets.access import BadRequest, only_visible, visible
from tickets.access import filters as ticket_filters
from tickets.access import account_of as _account
from tickets.access import state_of as _state
from tickets.access import whole as _whole
from tickets.calls import TicketCalls
from tickets.model import IllegalTransition, TicketSource, TicketState
from tickets.service import NewTicket, TicketInputError, TicketNotFound, TicketService, labelled

TICKETS = web.AppKey("tickets", TicketService)
TICKET_CALLS = web.AppKey("ticket_calls", TicketCalls)
MAX_LIST = 500
MAX_LEDGER = 100_000


def _filters(request: web.Request, service: TicketService) -> dict[str, Any]:
    return ticket_filters(request.query, service.deadlines.tz, service.department_names)


async def _body(request: web.Request) -> Mapping[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _text(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be text")
    return value


def _account_id(body: Mapping[str, Any], default: int | None = None) -> int | None:
    account = body.get("account_id", default)
    if account is not None and (isinstance(account, bool) or not isinstance(account, int)):
        raise BadRequest("account_id must be a whole number")
    return account


def _reading(request: web.Request):
    """A connection of the API's pool (bounded, with a statement timeout)."""
    core = request.app[CORE]
    return core.api_pool.acquire(timeout=core.settings.database.connect_timeout)


async def _audit(request: web.Request, action: str, subject: str | None = None,
                 detail: Mapping[str, Any] | None = None) -> None:
    async with request.app[CORE].api_pool.acquire() as conn:
        await record_request(conn, request, action, subject, detail)


async def _changed(request: web.Request, action: str, ticket: Mapping[str, Any],
                   detail: Mapping[str, Any] | None = None, **extra: Any) -> web.Response:
    """Audit a change to a ticket and answer with the ticket as it is now."""
    await _audit(request, action, f"ticket:{ticket['number']}", detail)
    return json_response({"ticket": labelled(ticket), **extra})


def _errors(handler):
    """Turn the service's refusals into clear 4xx answers."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadRequest as exc:
            return json_response({"error": str(exc)}, 400)
        except TicketInputError as exc:
            return json_response({"error": str(exc)}, 400)
        except TicketNotFound:
            return json_response({"error": "no such ticket"}, 404)
        except (asyncpg.QueryCanceledError, asyncio.TimeoutError):
            response = json_response({"error": "the database is busy; try again shortly"}, 503)
            response.headers["Retry-After"] = "1"
            return response
        except IllegalTransition as exc:
            return json_response({"error": str(exc), "state": exc.current.value,
                                  "allowed": sorted(s.value for s in exc.allowed)}, 409)
    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _id(request: web.Request) -> int:
    value = _whole(request.match_info["ticket_id"], "ticket id")
    assert value is not None
    return value


async def _own_ticket(request: web.Request) -> dict[str, Any]:
    """The ticket of the URL if the identity may see it (404 otherwise, so an
    agent cannot probe which tickets exist)."""
    async with _reading(request) as conn:
        ticket = await store.ticket(conn, _id(request))
    if ticket is None or not visible(request[IDENTITY], ticket):
        raise TicketNotFound(_id(request))
    return ticket


@requires(Role.AGENT)
@_errors
async def open_ticket(request: web.Request) -> web.Response:
    body = await _body(request)
    identity = request[IDENTITY]
    new = NewTicket(TicketSource.MANUAL, _text(body, "subject", required=True) or "",
                    linkedid=_text(body, "linkedid"), caller_number=_text(body, "caller_number"),
                    department=_text(body, "department"), description=_text(body, "description") or "",
                    reason=_text(body, "reason"), callback=bool(body.get("callback", False)),
                    knowledge_gap=bool(body.get("knowledge_gap", False)), assignee_account_id=_account(identity))
    opened = await request.app[TICKETS].open(new, identity.actor)
    await _audit(request, "ticket.opened", f"ticket:{opened.ticket['number']}")
    return json_response({"ticket": labelled(opened.ticket)}, 201)


@requires(Role.AGENT)
@_errors
async def open_from_disposition(request: web.Request) -> web.Response:
    body = await _body(request)
    identity = request[IDENTITY]
    account = _account_id(body, _account(identity))
    opened = await request.app[TICKETS].open_from_disposition(
        _text(body, "linkedid", required=True) or "", _text(body, "disposition", required=True) or "",
        identity.actor, account_id=account, note=_text(body, "note") or "",
        department=_text(body, "department"))
    if opened is None:
        return json_response({"ticket": None, "created": False})
    if opened.created:
        await _audit(request, "ticket.opened", f"ticket:{opened.ticket['number']}",
                     {"disposition": body.get("disposition")})
    return json_response({"ticket": labelled(opened.ticket), "created": opened.created},
                         201 if opened.created else 200)


@requires(Role.AGENT)
@_errors
async def list_tickets(request: web.Request) -> web.Response:
    service = request.app[TICKETS]
    identity = request[IDENTITY]
    filters = _filters(request, service)
    limit = _whole(request.query.get("limit"), "limit", 1, MAX_LIST) or 100
    before = _whole(request.query.get("before"), "before")
    mine = only_visible(identity)
    async with _reading(request) as conn:
        found = await store.find_tickets(conn, **filters, **mine, limit=limit, before_id=before)
    await _audit(request, "tickets.listed", detail={"count": len(found), "overdue": filters["overdue"]})
    following = found[-1]["id"] if len(found) == limit else None
    return json_response({"tickets": [labelled(t) for t in found], "next": following})


@requires(Role.SUPERVISOR)
@_errors
async def overdue_tickets(request: web.Request) -> web.Response:
    async with _reading(request) as conn:
        found = await store.find_tickets(conn, overdue=True, limit=MAX_LEDGER)
    await _audit(request, "tickets.overdue_listed", detail={"count": len(found)})
    return json_response({"tickets": [labelled(t) for t in found]})


@requires(Role.AGENT)
@_errors
async def show_ticket(request: web.Request) -> web.Response:
    ticket = await _own_ticket(request)
    async with _reading(request) as conn:
        view = await request.app[TICKETS].view(ticket["id"], conn)
    await _audit(request, "ticket.viewed", f"ticket:{ticket['number']}")
    return json_response(view)


@requires(Role.AGENT)
@_errors
async def move_ticket(request: web.Request) -> web.Response:
    ticket = await _own_ticket(request)
    body = await _body(request)
    identity = request[IDENTITY]
    to = _state(_text(body, "to", required=True) or "")
    if to is TicketState.DISPATCHED and not identity.role.admits(Role.SUPERVISOR):
        return json_response({"error": "dispatching to 12345 needs the supervisor role"}, 403)
    moved = await request.app[TICKETS].transition(ticket["id"], to, identity.actor,
                                                  _text(body, "reason", required=True) or "")
    return await _changed(request, "ticket.moved", moved, {"from": ticket["state"], "to": moved["state"]})


@requires(Role.SUPERVISOR)
@_errors
async def assign_ticket(request: web.Request) -> web.Response:
    body = await _body(request)
    account = _account_id(body)
    ticket = await request.app[TICKETS].assign(_id(request), request[IDENTITY].actor,
                                               department=_text(body, "department"), account_id=account,
                                               reason=_text(body, "reason"))
    return await _changed(request, "ticket.assigned", ticket,
                          {"department": ticket["department"], "account_id": ticket["assignee_account_id"]})


@requires(Role.SUPERVISOR)
@_errors
async def dispatch_ticket(request: web.Request) -> web.Response:
    body = await _body(request)
    service = request.app[TICKETS]
    ticket = await service.dispatch(_id(request), request[IDENTITY].actor, _text(body, "reason", required=True) or "")
    return await _changed(request, "ticket.dispatched", ticket, dispatch_rate=await service.dispatch_rate())


@requires(Role.SUPERVISOR)
@_errors
async def knowledge_answered(request: web.Request) -> web.Response:
    body = await _body(request)
    ticket = await request.app[TICKETS].resolve_knowledge_gap(
        _id(request), _text(body, "knowledge_item_id", required=True) or "", request[IDENTITY].actor)
    return await _changed(request, "ticket.knowledge_answered", ticket,
                          {"knowledge_item_id": ticket["knowledge_item_id"]})


@requires(Role.AGENT)
@_errors
async def call_back(request: web.Request) -> web.Response:
    """The console's 回电: the caller, then the extension given, the assigned
    agent's phone, or the department's queue (tickets/calls.py)."""
    ticket = await _own_ticket(request)
    body = await _body(request)
    call = await request.app[TICKET_CALLS].schedule_callback(
        ticket["id"], request[IDENTITY].actor, number=_text(body, "number"), extension=_text(body, "extension"))
    await _audit(request, "ticket.callback_scheduled", f"ticket:{ticket['number']}",
                 {"call_id": call["id"], "extension": call["extension"]})
    return json_response({"call": call}, 202)


@requires(Role.SUPERVISOR)
@_errors
async def dispatch_answer(request: web.Request) -> web.Response:
    """The 12345 platform's answer about a case it was sent (its token is a supervisor's)."""
    body = await _body(request)
    if not body.get("idempotency_key") and not body.get("case_id"):
        raise BadRequest("idempotency_key or case_id is required")
    dispatch = await request.app[TICKETS].apply_dispatch_answer(body, f"12345:{request[IDENTITY].actor}")
    if dispatch is None:
        return json_response({"error": "no such dispatch"}, 404)
    await _audit(request, "ticket.dispatch_answered", f"dispatch:{dispatch['id']}",
                 {"status": body.get("status"), "duplicate": dispatch["duplicate"]})
    return json_response({"dispatch_id": dispatch["id"], "status": dispatch["status"],
                          "duplicate": dispatch["duplicate"]})


async def _ledger(request: web.Request) -> list[list[Any]]:
    service = request.app[TICKETS]
    filters = _filters(request, service)
    async with _reading(request) as conn:
        found = await store.find_tickets(conn, **filters, limit=MAX_LEDGER)
        now = await store.now(conn)
    await _audit(request, "tickets.ledger_exported", detail={
        "count": len(found), "format": request.path.rsplit(".", 1)[-1],
        **{k: v for k, v in filters.items() if v not in (None, False)}})
    return ledger.rows(list(reversed(found)), service.deadlines.tz, now, service.department_names)


def _attachment(body: bytes, content_type: str, name: str) -> web.Response:
    response = web.Response(body=body, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@requires(Role.SUPERVISOR)
@_errors
async def ledger_csv(request: web.Request) -> web.Response:
    table = await _ledger(request)
    return _attachment(ledger.to_csv(table), "text/csv", "tickets-ledger.csv")


@requires(Role.SUPERVISOR)
@_errors
async def ledger_xlsx(request: web.Request) -> web.Response:
    table = await _ledger(request)
    body = await asyncio.to_thread(ledger.to_xlsx, table)
    return _attachment(body, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                       "tickets-ledger.xlsx")


@requires(Role.SUPERVISOR)
@_errors
async def report(request: web.Request) -> web.Response:
    service = request.app[TICKETS]
    filters = _filters(request, service)
    async with _reading(request) as conn:
        figures = await ticket_figures(conn, filters["since"], filters["until"], filters["department"])
    goal = service.settings.dispatch_goal
    opened = figures["opened"]
    rate = figures["dispatched"] / opened if opened else 0.0
    figures.update(dispatch_rate=round(rate, 4), dispatch_goal=goal, dispatch_within_goal=rate <= goal)
    await _audit(request, "tickets.report_viewed")
    return json_response({"report": figures})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/tickets", open_ticket)
    app.router.add_post("/api/tickets/from-disposition", open_from_disposition)
    app.router.add_get("/api/tickets", list_tickets)
    app.router.add_get("/api/tickets/overdue", overdue_tickets)
    app.router.add_get("/api/tickets/ledger.csv", ledger_csv)
    app.router.add_get("/api/tickets/ledger.xlsx", ledger_xlsx)
    app.router.add_get("/api/tickets/report", report)
    app.router.add_post("/api/tickets/12345/answers", dispatch_answer)
    app.router.add_get(r"/api/tickets/{ticket_id:\d+}", show_ticket)
    app.router.add_post(r"/api/tickets/{ticket_id:\d+}/transition", move_ticket)
    app.router.add_post(r"/api/tickets/{ticket_id:\d+}/assign", assign_ticket)
    app.router.add_post(r"/api/tickets/{ticket_id:\d+}/dispatch", dispatch_ticket)
    app.router.add_post(r"/api/tickets/{ticket_id:\d+}/knowledge", knowledge_answered)
    app.router.add_post(r"/api/tickets/{ticket_id:\d+}/callback", call_back)


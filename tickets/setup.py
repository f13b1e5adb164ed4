"""Tickets, wired in: the service (``app[TICKETS]``), the triggers on committed
call facts, the timer worker and the 12345 outbox worker (every process runs
both: they share their tables safely), the HTTP routes, the pages and the
knowledge-base editors' tasks; an agent may play the recordings of a call
whose ticket is theirs. With an AMI connection also the telephony: the survey
and the callback offer as the voice menu's AGI scripts, and the worker that
places callbacks and 回访 calls. Tables in ``migrations/011_tickets.sql`` and
``016_surveys_callbacks.sql``."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from aiohttp import web

from hotline.core import Core
from hotline.logs import get_logger
from hotline.tasks import cancel_and_wait
from ivr.menu.setup import MENU_SESSIONS
from recordings.http import PLAYBACK_GRANTS
from tickets import gaps, http, pages, store
from tickets.access import account_of
from tickets.calendar import calendar_from
from tickets.call_worker import CallWorker
from tickets.callback_offer import CallbackOffer, callback_script
from tickets.calls import TicketCalls
from tickets.events import TicketTriggers
from tickets.http import TICKET_CALLS, TICKETS
from tickets.outbox import DispatchWorker
from tickets.service import TicketService
from tickets.survey import AFTER_CALL, FOLLOW_UP, survey_script
from tickets.timers import TimerWorker

log = get_logger(__name__)

TICKET_TRIGGERS = web.AppKey("ticket_triggers", TicketTriggers)
TICKET_TIMERS = web.AppKey("ticket_timers", TimerWorker)
TICKET_OUTBOX = web.AppKey("ticket_outbox", DispatchWorker)
TICKET_CALL_WORKER = web.AppKey("ticket_call_worker", CallWorker)


def setup(app: web.Application, core: Core) -> None:
    settings = core.settings.tickets
    service = TicketService(core.settings, lambda: core.pool, core.hub, calendar_from(settings.calendar))
    triggers = TicketTriggers(service)
    timers = TimerWorker(service, settings.timer_poll, core.hub.origin)
    outbox = DispatchWorker(service, settings, core.hub.origin)
    service.on_timers.append(timers.poke)
    service.on_dispatch.append(outbox.poke)
    app[TICKETS] = service
    app[TICKET_TRIGGERS] = triggers
    app[TICKET_TIMERS] = timers
    app[TICKET_OUTBOX] = outbox
    calls = TicketCalls(service, core.settings)
    app[TICKET_CALLS] = calls
    http.add_routes(app)
    pages.add_routes(app)
    gaps.add_routes(app)
    app[PLAYBACK_GRANTS].append(ticket_holder_may_listen)
    worker = _telephony(app, core, service, calls)

    async def outbox_report() -> dict[str, Any]:
        async with core.pool.acquire(timeout=1.0) as conn:
            row = await conn.fetchrow(
                """SELECT count(*) AS pending, max(attempts) AS most_attempts,
                          extract(epoch FROM now() - min(created_at))::int AS oldest_seconds
                   FROM ticket_dispatches WHERE status = 'pending'""")
        return {**dict(row), "sending": settings.dispatch_url != ""}

    core.health.add("tickets_outbox", outbox_report, required=False)

    async def context(_app: web.Application) -> AsyncIterator[None]:
        unsubscribe = core.hub.subscribe(triggers.committed, remote=False)   # each bridge its own calls
        core.on_settle(triggers.wait_idle)
        timers.start()
        if settings.dispatch_url:
            outbox.start()
        else:
            log.warning("tickets.dispatch_not_configured",
                        detail="[tickets] dispatch_url is empty: dispatches to 12345 wait in the outbox")
        catch_up = asyncio.create_task(_reconcile(triggers), name="tickets-reconcile")
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            await core.settle_quietly()      # the last committed calls may open tickets
            unsubscribe()
            await cancel_and_wait(catch_up)
            await triggers.wait_idle()
            await timers.close()
            await outbox.close()
            if worker is not None:
                await worker.close()

    app.cleanup_ctx.append(context)


async def ticket_holder_may_listen(conn, identity, recording) -> bool:
    """An agent hears the recordings of a call whose ticket is theirs."""
    return await store.call_has_ticket_of(conn, recording["linkedid"], identity.actor, account_of(identity))


def _telephony(app: web.Application, core: Core, service: TicketService, calls: TicketCalls) -> CallWorker | None:
    """The survey and the callback offer in the callers' AGI sessions, and the
    worker placing calls: only where there is an AMI connection."""
    if core.ami is None:
        return None
    settings = core.settings
    sessions = app.get(MENU_SESSIONS)
    if sessions is not None:
        offer = CallbackOffer(service, settings)
        sessions.callback_offer = offer
        sessions.add_script("survey", survey_script(service, settings, AFTER_CALL))
        sessions.add_script("follow_up", survey_script(service, settings, FOLLOW_UP))
        sessions.add_script("callback", callback_script(offer, settings))
    worker = CallWorker(calls, settings, core.ami, core.hub.origin)
    core.ami_events.subscribe("OriginateResponse", worker.responded)
    core.on_settle(worker.wait_idle)
    service.on_calls.append(worker.poke)
    app[TICKET_CALL_WORKER] = worker
    return worker


async def _reconcile(triggers: TicketTriggers) -> None:
    try:
        await triggers.reconcile()
    except Exception:   # tried again at the next start
        log.exception("tickets.reconcile_failed")

"""Call records, the first feature: the tracker follows every AMI event (and
resyncs after each login), the call writer commits its facts, the catch-up
reconciles what Asterisk wrote down while the bridge could not see it, and
the read API serves them. Its tables are in ``migrations/``."""

from __future__ import annotations

from aiohttp import web

from hotline.core import Core
from ivr.calls import http
from ivr.calls.catch_up import CatchUp
from ivr.calls.events import CallEvents

CALL_EVENTS = web.AppKey("call_events", CallEvents)
CATCH_UP = web.AppKey("calls_catch_up", CatchUp)


def setup(app: web.Application, core: Core) -> None:
    events = CallEvents(core)
    events.subscribe()
    app[CALL_EVENTS] = events
    if core.ami is not None:   # the process that bridges this node's Asterisk reads its files
        catch_up = CatchUp(core, events.tracker)
        core.on_login("calls.catch_up", catch_up.after_login)   # after calls.resync
        core.on_settle(catch_up.wait_idle)
        app.cleanup_ctx.append(catch_up.context)
        app[CATCH_UP] = catch_up
    http.add_routes(app)

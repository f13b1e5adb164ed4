"""Call records, the first feature: the tracker follows every AMI event (and
resyncs after each login), the call writer commits its facts, and the read
API serves them. Its tables are in ``migrations/001_calls.sql``."""

from __future__ import annotations

from aiohttp import web

from hotline.core import Core
from ivr.calls import http
from ivr.calls.events import CallEvents

CALL_EVENTS = web.AppKey("call_events", CallEvents)


def setup(app: web.Application, core: Core) -> None:
    events = CallEvents(core)
    events.subscribe()
    app[CALL_EVENTS] = events
    http.add_routes(app)

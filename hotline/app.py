"""The composition root: one function builds the whole service.

``create_app(settings)`` makes the :class:`~hotline.core.Core`, lets every
feature in :data:`hotline.features.FEATURES` plug into it with
``setup(app, core)``, and returns the aiohttp application. Everything that runs
is started and stopped by the application's ``cleanup_ctx``, in this order
(and stopped in the reverse one):

1. the core: PostgreSQL pool, call writer, NOTIFY relay;
2. each feature's own contexts (the spoken menu's recogniser pool, ...);
3. the AMI connection, last, so no event arrives before its subscribers are
   ready, and none after they are gone.

The core's own routes are here: ``/healthz`` and ``/ws/events`` (the live
timeline for browsers). Features add theirs in their ``http.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Mapping

import asyncpg
from aiohttp import WSMsgType, web

from hotline import features, web as web_pages
from hotline.auth.audit import record_request
from hotline.auth.roles import Role, public, requires
from hotline.core import Core
from hotline.fanout import BrowserClient
from hotline.hub import TOPIC_AGENTS, TOPIC_CALLS, TOPIC_QUEUES, TOPIC_TICKETS
from hotline.http import json_response
from hotline.logs import get_logger
from hotline.settings import Settings

log = get_logger(__name__)

CORE = web.AppKey("core", Core)
TOPICS = frozenset({TOPIC_CALLS, TOPIC_AGENTS, TOPIC_QUEUES, TOPIC_TICKETS})


def create_app(settings: Settings, *, bridge: bool = True, pool: asyncpg.Pool | None = None,
               provide: Mapping[web.AppKey[Any], Any] | None = None,
               feature_names: tuple[str, ...] = features.FEATURES) -> web.Application:
    """The hotline as an aiohttp application. ``bridge=False`` makes a web-only
    process (no AMI). ``provide`` puts values in the application before the
    features are set up (a feature documents the keys it reads, e.g. the voice
    menu's ``VOICE_LISTENER``); ``pool`` is used instead of opening one."""
    app = web.Application()
    core = Core(settings, bridge=bridge, pool=pool)
    app[CORE] = core
    for key, value in (provide or {}).items():
        app[key] = value

    async def core_context(_app: web.Application) -> AsyncIterator[None]:
        await core.open()
        try:
            yield
        finally:
            await core.close()

    app.cleanup_ctx.append(core_context)
    web_pages.setup(app, settings)     # templates, /static/, page headers: before any feature's pages
    for name in feature_names:
        module = features.setup_module(name)
        if module is not None:
            module.setup(app, core)

    async def ami_context(_app: web.Application) -> AsyncIterator[None]:
        core.connect()
        try:
            yield
        finally:
            await core.disconnect()

    app.cleanup_ctx.append(ami_context)
    app.router.add_get("/healthz", health)
    app.router.add_get("/ws/events", events_socket)
    return app


@public
async def health(request: web.Request) -> web.Response:
    healthy, report = await request.app[CORE].health.report()
    return json_response(report, 200 if healthy else 503)


@requires(Role.SUPERVISOR)
async def events_socket(request: web.Request) -> web.StreamResponse:
    """Committed timeline rows as they happen, one JSON message per batch:
    ``{"topic": "calls", "origin": ..., "timeline": [{linkedid, kind, ...}]}``;
    with ``?topics=calls,agents,queues`` also the agents' states and the queue
    panel as they change (README, "Agents and queues": the message shapes).
    A browser that falls behind is closed with code 1013 (try again later)."""
    wanted = set(request.query.get("topics", TOPIC_CALLS).split(","))
    unknown = wanted - TOPICS
    if unknown:
        return json_response({"error": f"unknown topics: {', '.join(sorted(unknown))}"}, 400)
    hub = request.app[CORE].hub
    # compress=False: every client gets the very bytes encoded once for all of them.
    socket = web.WebSocketResponse(heartbeat=30.0, compress=False)
    await socket.prepare(request)
    async with request.app[CORE].api_pool.acquire() as conn:
        await record_request(conn, request, "events.followed", detail={"topics": sorted(wanted)})
    client = hub.browsers.connect(wanted, address=request.remote)
    reader = asyncio.create_task(_read_until_closed(socket, client))
    try:
        while True:
            data = await client.next_message()
            if data is None:
                if not socket.closed:
                    await socket.close(code=1013, message=(client.dropped_reason or "").encode()[:120])
                break
            await socket.send_frame(data, WSMsgType.TEXT)
    except (ConnectionResetError, RuntimeError):
        pass  # the browser went away mid-send
    finally:
        hub.browsers.disconnect(client)
        reader.cancel()
    return socket


async def _read_until_closed(socket: web.WebSocketResponse, client: BrowserClient) -> None:
    """Browsers send nothing here; reading is how their close (or a dead
    connection, through the heartbeat) is noticed."""
    async for _message in socket:
        pass
    client.drop("closed by the browser")

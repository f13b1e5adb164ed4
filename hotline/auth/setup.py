"""Authorisation for every route, people's logins and sessions, and the
admins' audit pages. First in the features' list, so its middleware is in
place before any route is served."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import asyncpg
from aiohttp import web

from hotline.auth import http, lockout, pages, sessions
from hotline.auth.middleware import authorise
from hotline.auth.passwords import PASSWORDS, Passwords
from hotline.core import Core
from hotline.logs import get_logger
from hotline.tasks import cancel_and_wait
from hotline.web import add_templates

log = get_logger(__name__)

PURGE_EVERY = 600.0    # seconds between removals of ended sessions and stale login failures


def setup(app: web.Application, core: Core) -> None:
    # Credentials are checked on the API's own pool, so a flood of requests waits
    # there instead of taking connections from the features and the writer.
    app.middlewares.append(authorise(lambda: core.api_pool, core.settings.web))
    app[PASSWORDS] = Passwords(core.settings.web)
    add_templates(app, Path(__file__).parent / "templates")
    http.add_routes(app)
    pages.add_routes(app)

    async def purge_context(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_purge_forever(core))
        try:
            yield
        finally:
            await cancel_and_wait(task)

    app.cleanup_ctx.append(purge_context)


async def _purge_forever(core: Core) -> None:
    """Rows that no longer count, removed now and then by every process (harmless
    twice). Not at start-up, where the pool's connections are wanted elsewhere."""
    while True:
        await asyncio.sleep(PURGE_EVERY)
        try:
            async with core.pool.acquire() as conn:
                ended = await sessions.purge(conn, core.settings.web)
                failures = await lockout.purge(conn, core.settings.web)
            if ended or failures:
                log.info("auth.purged", sessions=ended, login_failures=failures)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("auth.purge_failed", error=repr(exc))

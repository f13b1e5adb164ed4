"""Agents: people's accounts (and the admins' pages for them), queue membership
over AMI (login, logout, pause, wrap-up, transfer), every agent's state from
Asterisk's events, the queue panel. The desk (:class:`agents.service.AgentDesk`,
``app[AGENT_DESK]``) is what the console calls."""

from __future__ import annotations

from typing import AsyncIterator

import asyncpg
from aiohttp import web

from agents.accounts import http as accounts_http
from agents.events import MembershipEvents
from agents.service import AgentDesk
from agents.spying import SpyAudit
from hotline.auth.login import admin_exists
from hotline.auth.pages import FIRST_ADMIN_COMMAND
from hotline.core import Core
from hotline.logs import get_logger

log = get_logger(__name__)

AGENT_DESK = web.AppKey("agent_desk", AgentDesk)


def setup(app: web.Application, core: Core) -> None:
    desk = AgentDesk(core)
    MembershipEvents(core, desk).subscribe()
    SpyAudit(core).subscribe()
    app[AGENT_DESK] = desk
    accounts_http.add_routes(app)

    async def desk_context(_app: web.Application) -> AsyncIterator[None]:
        desk.start()
        try:
            yield
        finally:
            await desk.close()

    async def first_admin_hint(_app: web.Application) -> None:
        """A fresh install has nobody to log in as: say how to make the first admin."""
        try:
            async with core.pool.acquire() as conn:
                if await admin_exists(conn):
                    return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("accounts.admin_check_failed", error=repr(exc))
            return
        log.warning("accounts.no_admin", hint="no admin account yet: create the first one with "
                    f"'{FIRST_ADMIN_COMMAND}' (asks for a password), then log in at /login")

    app.cleanup_ctx.append(desk_context)
    app.on_startup.append(first_admin_hint)

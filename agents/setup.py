"""Agents: people's accounts (and the admins' pages for them), and queue
membership as Asterisk reports it. (Login/pause over AMI and the console come
with the agents issue, in these same rooms.)"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from agents.accounts import http as accounts_http
from agents.events import MembershipEvents
from hotline.auth.login import admin_exists
from hotline.auth.pages import FIRST_ADMIN_COMMAND
from hotline.core import Core
from hotline.logs import get_logger

log = get_logger(__name__)


def setup(app: web.Application, core: Core) -> None:
    MembershipEvents(core).subscribe()
    accounts_http.add_routes(app)

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

    app.on_startup.append(first_admin_hint)

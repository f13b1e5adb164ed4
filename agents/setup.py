"""Agents: queue membership over AMI (login, logout, pause, wrap-up, transfer),
every agent's state from Asterisk's events, the queue panel. The desk
(:class:`agents.service.AgentDesk`, ``app[AGENT_DESK]``) is what the console
calls. (Accounts and the console's pages come in these same rooms.)"""

from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from agents.events import MembershipEvents
from agents.service import AgentDesk
from hotline.core import Core

AGENT_DESK = web.AppKey("agent_desk", AgentDesk)


def setup(app: web.Application, core: Core) -> None:
    desk = AgentDesk(core)
    MembershipEvents(core, desk).subscribe()
    app[AGENT_DESK] = desk

    async def desk_context(_app: web.Application) -> AsyncIterator[None]:
        desk.start()
        try:
            yield
        finally:
            await desk.close()

    app.cleanup_ctx.append(desk_context)

"""The agents' console: its page (an agent's home page), its WebSocket, its
actions and their audit rows (see :mod:`agents.console`). Set up after
``agents``, whose desk it uses."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from agents.console import http
from agents.console.service import STOPPING, Consoles
from agents.setup import AGENT_DESK
from hotline.auth.roles import Role
from hotline.core import Core
from hotline.web import add_nav, add_templates, set_home


def setup(app: web.Application, core: Core) -> None:
    consoles = Consoles(core, app[AGENT_DESK])
    app[http.CONSOLES] = consoles
    add_templates(app, Path(__file__).parent / "templates")
    http.add_routes(app)
    add_nav(app, "坐席工作台", "/console", Role.AGENT)
    set_home(app, Role.AGENT, "/console")

    async def consoles_context(_app: web.Application) -> AsyncIterator[None]:
        consoles.start()
        try:
            yield
        finally:
            await consoles.close()

    async def close_consoles(_app: web.Application) -> None:
        # Before aiohttp waits for the handlers: an open console's handler ends at once.
        consoles.close_all(STOPPING)

    app.cleanup_ctx.append(consoles_context)
    app.on_shutdown.append(close_consoles)

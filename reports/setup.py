"""The report, wired in: its page and JSON/CSV routes (no tables of its own:
it reads the calls', the knowledge base's and the tickets')."""

from __future__ import annotations

from aiohttp import web

from hotline.core import Core
from reports import http


def setup(app: web.Application, core: Core) -> None:
    http.add_routes(app)

"""Authorisation for every route, and the admins' audit page. First in the
features' list, so its middleware is in place before any route is served."""

from __future__ import annotations

from aiohttp import web

from hotline.auth import http
from hotline.auth.middleware import authorise
from hotline.core import Core


def setup(app: web.Application, core: Core) -> None:
    app.middlewares.append(authorise(lambda: core.pool))
    http.add_routes(app)

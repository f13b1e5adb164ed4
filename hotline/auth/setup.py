"""Authorisation for every route, and the admins' audit page. First in the
features' list, so its middleware is in place before any route is served."""

from __future__ import annotations

from aiohttp import web

from hotline.auth import http
from hotline.auth.middleware import authorise
from hotline.core import Core


def setup(app: web.Application, core: Core) -> None:
    # Credentials are checked on the API's own pool, so a flood of requests waits
    # there instead of taking connections from the features and the writer.
    app.middlewares.append(authorise(lambda: core.api_pool))
    http.add_routes(app)

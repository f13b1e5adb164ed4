"""The web pages' foundation: templates, the stylesheet, the navigation, and
the headers every page carries. Features add their own templates folder
(:func:`add_templates`), navigation entries (:func:`add_nav`) and render
through :func:`render`, which gives every template the signed-in person, their
CSRF token and the entries their role may see.

Pages are Simplified Chinese, autoescaped Jinja2 (aiohttp-jinja2), styled by
one local stylesheet (``/static/hotline.css``): nothing is loaded from another
site, and the Content-Security-Policy says so to the browser (no inline script
or style, no framing, forms post only here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web

from hotline.auth.roles import Role
from hotline.settings import Settings

HERE = Path(__file__).parent
STATIC_PREFIX = "/static/"


@dataclass(frozen=True)
class NavEntry:
    label: str
    path: str
    role: Role       # the least role that sees it


NAV = web.AppKey("web_nav", list)               # [NavEntry], in the order added
HOMES = web.AppKey("web_homes", dict)           # Role -> the page "/" sends that role to
SERVICE_NAME = web.AppKey("web_service_name", str)
TEMPLATES = web.AppKey("web_templates", jinja2.FileSystemLoader)
ROLE_NAMES = {Role.AGENT: "坐席", Role.SUPERVISOR: "班长", Role.ADMIN: "管理员"}

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",          # pages show callers' and accounts' data
}


def setup(app: web.Application, settings: Settings) -> None:
    """Templates (this folder's, then each feature's), ``/static/`` and the
    headers; called by the composition root before the features."""
    # The loader reads its searchpath on every lookup, so add_templates can extend it.
    app[TEMPLATES] = loader = jinja2.FileSystemLoader([HERE / "templates"])
    app[NAV] = []
    app[HOMES] = {}
    app[SERVICE_NAME] = settings.service.name
    env = aiohttp_jinja2.setup(app, loader=loader, autoescape=True, default_helpers=False,
                               undefined=jinja2.StrictUndefined)
    zone = ZoneInfo(settings.web.time_zone)
    # {{ ticket.opened_at | local_time }}: stored in UTC, shown in the hotline's time zone.
    env.filters["local_time"] = lambda at, fmt="%Y-%m-%d %H:%M": at.astimezone(zone).strftime(fmt) if at else ""
    app.router.add_static(STATIC_PREFIX, HERE / "static", name="static", append_version=False)
    app.on_response_prepare.append(_headers)


def add_templates(app: web.Application, folder: Path) -> None:
    app[TEMPLATES].searchpath.append(str(folder))


def add_nav(app: web.Application, label: str, path: str, role: Role) -> None:
    """A link in every page's header, for people of ``role`` and above."""
    app[NAV].append(NavEntry(label, path, role))


def set_home(app: web.Application, role: Role, path: str) -> None:
    """Where ``/`` sends people of exactly ``role`` (an agent's console); others
    get the landing page."""
    app[HOMES][role] = path


def home_of(app: web.Application, role: Role) -> str | None:
    return app[HOMES].get(role)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if (response.content_type or "").startswith("text/html"):
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)


def render(request: web.Request, template: str, context: Mapping[str, Any] | None = None,
           status: int = 200) -> web.Response:
    """A page: ``template`` with ``context`` and what every page shows."""
    from hotline.auth.middleware import IDENTITY, SESSION

    identity = request.get(IDENTITY)
    session = request.get(SESSION)
    base = {
        "service_name": request.app[SERVICE_NAME],
        "identity": identity,
        "display_name": session.display_name if session is not None else None,
        "csrf_token": session.csrf_token if session is not None else None,
        "nav": [n for n in request.app[NAV] if identity is not None and identity.role.admits(n.role)],
        "path": request.path,
        "role_names": ROLE_NAMES,
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **(context or {})}, status=status)


def form_text(form: Mapping[str, Any], name: str) -> str:
    """A posted form's text field, stripped ("" when absent or a file)."""
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


async def render_error(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", {"status": status, "message": message}, status=status)


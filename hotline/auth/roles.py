"""Roles, least to most trusted; a route that needs one admits every higher one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Awaitable, Callable

from aiohttp import web


class Role(str, Enum):
    AGENT = "agent"            # answers calls: their console, the knowledge base
    SUPERVISOR = "supervisor"  # every call, recording and queue; reports
    ADMIN = "admin"            # accounts, tokens, settings

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def admits(self, needed: "Role") -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Identity:
    kind: str          # "token" (an API token) or "account" (a person's session)
    id: int
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """How the audit log names who did something."""
        return f"{self.kind}:{self.id}:{self.name}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NEEDS = "hotline_role_needed"      # attribute set on a handler by @requires / @public
PAGE = "hotline_page"              # attribute set on a handler by @page
PUBLIC = "public"


def requires(role: Role) -> Callable[[Handler], Handler]:
    """Declare the least role a route needs."""
    def mark(handler: Handler) -> Handler:
        setattr(handler, NEEDS, role)
        return handler
    return mark


def public(handler: Handler) -> Handler:
    """Declare a route open to anyone (only what holds no caller data: /healthz)."""
    setattr(handler, NEEDS, PUBLIC)
    return handler


def needed(handler: Any) -> Role | str | None:
    return getattr(handler, NEEDS, None)


def page(handler: Handler) -> Handler:
    """Declare a route that answers browsers with HTML (with @requires or
    @public): a request without a session is sent to the login page instead of
    getting a 401, and refusals are pages in Chinese, not JSON."""
    setattr(handler, PAGE, True)
    return handler


def is_page(handler: Any) -> bool:
    return bool(getattr(handler, PAGE, False))

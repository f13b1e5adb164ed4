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
    kind: str          # "token" (later: "account")
    id: int
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """How the audit log names who did something."""
        return f"{self.kind}:{self.id}:{self.name}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NEEDS = "hotline_role_needed"      # attribute set on a handler by @requires / @public
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

"""Health checks, registered by each part that can fail (not discovered).

``/healthz`` answers 200 only when every required check passes; the others
(a backlog, a count) are reported beside them. A check that raises counts as
failed, with the error in the report, so the page itself never answers 500.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

Check = Callable[[], "Any | Awaitable[Any]"]
CHECK_TIMEOUT = 2.0


@dataclass(frozen=True)
class _Registered:
    name: str
    check: Check
    required: bool


class Health:
    def __init__(self) -> None:
        self._checks: list[_Registered] = []

    def add(self, name: str, check: Check, *, required: bool = True) -> None:
        """``check()`` returns a truthy value when healthy (a required check) or
        any value worth reporting (``required=False``)."""
        self._checks.append(_Registered(name, check, required))

    async def report(self) -> tuple[bool, dict[str, Any]]:
        healthy, report = True, {}
        for registered in self._checks:
            try:
                value = registered.check()
                if inspect.isawaitable(value):
                    value = await asyncio.wait_for(value, CHECK_TIMEOUT)
            except Exception as exc:  # the report says what failed; /healthz never 500s
                value = False
                report[f"{registered.name}_error"] = repr(exc)
            report[registered.name] = value
            if registered.required and not value:
                healthy = False
        return healthy, report

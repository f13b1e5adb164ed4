"""The voice menu for one caller: greeting, keypad menu, retries, routing.

Every step is written to the call's timeline, so a supervisor can see why a call
went where it went. Speech recognition plugs in through :class:`IntentListener`
(the next step of the project); without one the menu is keypad only.

Routing: a department queue is entered with ``EXEC Queue <queue>`` inside the
AGI session (as captured from Asterisk 22); the fallback department is reached
with ``ASYNCAGI BREAK``, which returns the caller to the dialplan, whose next
step is the general queue, the same safe path a caller takes when the bridge
is unreachable.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Mapping, Protocol

from hotline.logs import get_logger
from hotline.settings import Department, Settings
from ivr.menu.async_agi import AgiCommandError, AgiHangup, AsyncAgiChannel
from ivr.menu.keypad import MenuPosition, OpenMenu, Retry, Route, decide

log = get_logger(__name__)

Record = Callable[[str, Mapping[str, Any]], None]
ALL_KEYS = "0123456789*#"


class IntentListener(Protocol):
    """What speech recognition will provide: listen to the caller and return a
    department code, or None to fall back to the keypad."""

    async def listen(self, agi: AsyncAgiChannel, record: Record) -> str | None: ...


class MenuSession:
    def __init__(self, agi: AsyncAgiChannel, settings: Settings, record: Record,
                 listener: IntentListener | None = None):
        self.agi = agi
        self.settings = settings
        self.record = record
        self.listener = listener
        self.routed_to: Department | None = None

    async def run(self) -> None:
        menu = self.settings.menu
        try:
            self.record("menu.greeting", {"prompt": menu.greeting})
            greeting = await self.agi.command(f'STREAM FILE {menu.greeting} "{ALL_KEYS}"')
            key = greeting.digits()
            if not key and self.listener is not None:
                department = await self.listener.listen(self.agi, self.record)
                if department:
                    await self._route(Route(department, "speech"))
                    return
            await self._keypad(key)
        except AgiHangup as exc:
            self.record("menu.caller_left", {"detail": str(exc)})
        except (AgiCommandError, asyncio.TimeoutError) as exc:
            log.error("menu failed; sending the caller to the fallback queue", error=repr(exc))
            self.record("menu.failed", {"error": str(exc)})
            await self._fallback_after_error()

    async def _keypad(self, key: str) -> None:
        menu = self.settings.menu
        position = MenuPosition()
        while True:
            if not key:
                prompt = menu.keypads[position.menu].prompt
                result = await self.agi.command(f"GET DATA {prompt} {menu.digit_timeout_ms} 1")
                key = result.digits()
            decision = decide(menu, position, key)
            self.record("menu.key", {"menu": position.menu, "key": key or None,
                                     "decision": type(decision).__name__.lower()})
            key = ""
            if isinstance(decision, Route):
                await self._route(decision)
                return
            if isinstance(decision, OpenMenu):
                position = decision.position
                continue
            assert isinstance(decision, Retry)
            position = decision.position
            prompt = menu.invalid if decision.reason == "invalid" else menu.no_input
            self.record("menu.retry", {"reason": decision.reason, "failures": position.failures})
            replay = await self.agi.command(f'STREAM FILE {prompt} "{ALL_KEYS}"')
            key = replay.digits()

    async def _route(self, decision: Route) -> None:
        department = self.settings.department(decision.department)
        self.routed_to = department
        await self.agi.command(f"SET VARIABLE HOTLINE_INTENT {department.code}")
        self.record("menu.routed", {"department": department.code, "queue": department.queue,
                                    "reason": decision.reason})
        log.info("menu routed the caller", department=department.code, reason=decision.reason)
        if department.code == self.settings.menu.fallback_department:
            await self.agi.command("ASYNCAGI BREAK")
            return
        # The dialplan's last-resort timeout must not cut the caller off in the queue.
        await self.agi.command("SET VARIABLE TIMEOUT(absolute) 0")
        await self.agi.send(f"EXEC Queue {department.queue}")

    async def _fallback_after_error(self) -> None:
        try:
            await self.agi.command("ASYNCAGI BREAK", timeout=5.0)
        except (AgiHangup, AgiCommandError, asyncio.TimeoutError) as exc:
            log.error("could not return the caller to the dialplan", error=repr(exc))

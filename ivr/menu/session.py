"""The voice menu for one caller: greeting, keypad menu, retries, routing.

Every step is written to the call's timeline, so a supervisor can see why a call
went where it went. Speech plugs in through :class:`IntentListener` (the spoken
menu, :mod:`ivr.menu.voice`), which talks with the caller first; without one, or
when it cannot start, the menu is keypad only.

Routing: a department queue is entered with ``EXEC Queue <queue>,c`` inside the
AGI session (as captured from Asterisk 22; see :mod:`ivr.menu.queueing` for the
``c`` and the ``ASYNCAGI BREAK`` queued behind it); the fallback department is
reached with ``ASYNCAGI BREAK``, which returns the caller to the dialplan, whose
next step is the general queue, the same safe path a caller takes when the
bridge is unreachable. When nobody is logged in to the queue (nights,
holidays) and a :class:`CallbackOffer` is plugged in (tickets), the caller is
first offered a callback.

A prompt Asterisk cannot play (a missing or broken sound file) never ends the
menu: it is logged (``menu.prompt_failed``), written to the timeline, and the
caller goes to a person, by the dialplan when Asterisk has ended the AGI
session itself (``STREAM FILE``), by us when it still waits (``GET DATA``);
see :mod:`ivr.menu.prompt_failure`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Mapping, Protocol

from hotline.logs import get_logger
from hotline.settings import Department, Settings
from ivr.menu.async_agi import AgiCommandError, AgiHangup, AsyncAgiChannel
from ivr.menu.agi_result import AgiResult
from ivr.menu.keypad import MenuPosition, OpenMenu, Retry, Route, decide
from ivr.menu.prompt_failure import PromptFailed, PromptFailure, play
from ivr.menu.queueing import enter_queue, logged_in_agents
from ivr.menu.voice.dialogue import Outcome, VoiceOutcome

log = get_logger(__name__)

Record = Callable[[str, Mapping[str, Any]], None]
ALL_KEYS = "0123456789*#"


class IntentListener(Protocol):
    """The spoken menu: greets the caller, listens, and says how to go on."""

    async def listen(self, agi: AsyncAgiChannel, record: Record) -> VoiceOutcome: ...


class CallbackOffer(Protocol):
    """The queue's callback offer (tickets): asks a caller about to be queued
    where nobody answers whether to be called back; True when the caller was
    taken care of (the callback registered, the call ended), False to queue them."""

    async def offer(self, agi: AsyncAgiChannel, record: Record, department: Department,
                    reason: str) -> bool: ...


# Routes that skip the offer: the sound files themselves are failing.
NO_OFFER_REASONS = frozenset({"prompt_failed"})


class MenuSession:
    def __init__(self, agi: AsyncAgiChannel, settings: Settings, record: Record,
                 listener: IntentListener | None = None, callback_offer: CallbackOffer | None = None):
        self.agi = agi
        self.settings = settings
        self.record = record
        self.listener = listener
        self.callback_offer = callback_offer
        self.routed_to: Department | None = None

    async def run(self) -> None:
        try:
            try:
                await self._menu()
            except PromptFailed as failed:
                await self._prompt_failed(failed)
        except AgiHangup as exc:
            self.record("menu.caller_left", {"detail": str(exc)})
        except (AgiCommandError, asyncio.TimeoutError) as exc:
            log.error("menu.failed", error=repr(exc), detail="sending the caller to the fallback queue")
            self.record("menu.failed", {"error": str(exc)})
            await self._fallback_after_error()

    async def _menu(self) -> None:
        menu = self.settings.menu
        if self.listener is not None and await self._spoken_menu():
            return
        self.record("menu.greeting", {"prompt": menu.greeting})
        greeting = await self._prompt("STREAM FILE", menu.greeting, f'"{ALL_KEYS}"')
        await self._keypad(greeting.digits())

    async def _spoken_menu(self) -> bool:
        """Run the spoken menu; True when it settled the call, False when the
        keypad menu should start with its own greeting."""
        assert self.listener is not None
        outcome = await self.listener.listen(self.agi, self.record)
        if outcome.action is Outcome.ROUTE and outcome.department:
            await self._route(Route(outcome.department, "key" if outcome.key else "speech"))
            return True
        if outcome.action is Outcome.RESOLVED:
            self.record("menu.resolved", {"reason": outcome.reason})
            await self.agi.command("HANGUP")
            return True
        if outcome.action is Outcome.KEYPAD:
            await self._keypad(outcome.key)
            return True
        return outcome.action is Outcome.GONE

    async def _keypad(self, key: str) -> None:
        menu = self.settings.menu
        position = MenuPosition()
        while True:
            if not key:
                prompt = menu.keypads[position.menu].prompt
                result = await self._prompt("GET DATA", prompt, f"{menu.digit_timeout_ms} 1")
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
            replay = await self._prompt("STREAM FILE", prompt, f'"{ALL_KEYS}"')
            key = replay.digits()

    async def _route(self, decision: Route) -> None:
        department = self.settings.department(decision.department)
        self.routed_to = department
        await self.agi.command(f"SET VARIABLE HOTLINE_INTENT {department.code}")
        self.record("menu.routed", {"department": department.code, "queue": department.queue,
                                    "reason": decision.reason})
        log.info("menu.routed", department=department.code, reason=decision.reason)
        if await self._called_back_instead(department, decision.reason):
            return
        if department.code == self.settings.menu.fallback_department:
            await self.agi.command("ASYNCAGI BREAK")
            return
        await enter_queue(self.agi, department.queue)

    async def _called_back_instead(self, department: Department, reason: str) -> bool:
        """Nobody is logged in to the queue: the caller may choose a callback."""
        if self.callback_offer is None or reason in NO_OFFER_REASONS:
            return False
        if await logged_in_agents(self.agi, department.queue) != 0:
            return False
        self.record("menu.nobody_logged_in", {"queue": department.queue})
        return await self.callback_offer.offer(self.agi, self.record, department, "nobody")

    async def _prompt(self, command: str, prompt: str, args: str) -> AgiResult:
        return await play(self.agi, command, prompt, args)

    async def _prompt_failed(self, failed: PromptFailed) -> None:
        """The caller is still on the line: to a person, whatever the files."""
        by_dialplan = failed.failure is PromptFailure.DIALPLAN_FALLBACK
        log.error("menu.prompt_failed", file=failed.prompt, command=failed.command, result=failed.result,
                  channel=self.agi.channel, uniqueid=self.agi.uniqueid, reaction=failed.failure.value)
        self.record("menu.prompt_failed", {
            "prompt": failed.prompt, "command": failed.command, "result": failed.result,
            "reaction": failed.failure.value,
            "detail": ("Asterisk ended the AGI session; the dialplan queues the caller" if by_dialplan
                       else "the AGI session stayed open; the menu sends the caller to a person")})
        if not by_dialplan:
            await self._route(Route(self.settings.menu.fallback_department, "prompt_failed"))

    async def _fallback_after_error(self) -> None:
        try:
            await self.agi.command("ASYNCAGI BREAK", timeout=5.0)
        except (AgiHangup, AgiCommandError, asyncio.TimeoutError) as exc:
            log.error("menu.dialplan_return_failed", error=repr(exc))

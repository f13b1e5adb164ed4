"""The queue's callback offer: "press 1 to keep your place and be called back".

Two ways in:

* ``nobody``: the voice menu is about to queue the caller and app_queue says
  nobody is logged in to the queue (nights, holidays). The menu asks here
  first (:meth:`CallbackOffer.offer`): 1 registers a callback, anything else
  queues the caller as usual.
* ``waited``: a caller who has waited ``callback_offer_seconds`` hears app_queue's
  periodic announcement (hotline/callback-offer) and presses 1: app_queue's exit
  key (queues.conf ``context = hotline-callback``) takes them to the dialplan,
  which runs ``AGI(agi:async,callback,${QUEUENAME})`` when the bridge is alive
  (:func:`callback_script`). Why an exit key and not our own timer: app_queue
  already plays the announcement at the right moment to every waiting caller and
  reads the key itself, with no AGI session held open through the wait, and the
  dialplan decides what happens when the bridge is gone.

Then the number: the caller ID, read back digit by digit (``SAY DIGITS``),
confirmed with 1, or another one keyed in (2). A confirmed number opens a
callback ticket (:meth:`~tickets.service.TicketService.open_callback_request`),
the caller hears that it is registered, and the call ends. A caller who asked
for the callback and hangs up before confirming gets the callback on the caller
ID. Declining, or not answering, puts the caller (back) in the queue: a person
is the safe path.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Mapping

from hotline.logs import get_logger
from hotline.settings import CALLBACK_NUMBER, Department, Settings
from ivr.menu.async_agi import AgiCommandError, AgiHangup, AsyncAgiChannel
from ivr.menu.prompt_failure import PromptFailed, play
from ivr.menu.queueing import enter_queue
from tickets.service import TicketService

log = get_logger(__name__)

Record = Callable[[str, Mapping[str, Any]], None]
MAX_DIGITS = 20
ENTER_TIMEOUT_MS = 10000


def caller_number(env: Mapping[str, str]) -> str | None:
    """The caller ID of the AGI environment, if it is a number we may call."""
    number = env.get("agi_callerid", "").strip().lstrip("+")
    return number if CALLBACK_NUMBER.fullmatch(number) else None


class CallbackOffer:
    def __init__(self, service: TicketService, settings: Settings):
        self.service = service
        self.settings = settings
        self.prompts = settings.tickets.prompts

    async def offer(self, agi: AsyncAgiChannel, record: Record, department: Department, reason: str) -> bool:
        """Ask, then (when the caller wants it) confirm the number and register the
        callback. True: registered and the call is ending; False: queue the caller."""
        record("callback.offered", {"reason": reason, "queue": department.queue})
        if reason == "nobody":
            try:
                result = await play(agi, "GET DATA", self.prompts["callback_nobody"],
                                    f"{self.settings.menu.digit_timeout_ms} 1")
            except PromptFailed as failed:
                return self._prompt_failed(record, failed)
            if result.digits() != "1":
                record("callback.declined", {"key": result.digits() or None})
                await self._say_declined(agi, record)
                return False
        return await self._confirm_and_register(agi, record, department, reason)

    async def _confirm_and_register(self, agi: AsyncAgiChannel, record: Record, department: Department,
                                    reason: str) -> bool:
        number = caller_number(agi.env)
        confirmed = "caller_id"
        registered = False
        failures, rounds = 0, 0
        try:
            # Bounded by wrong or missing keys, and by rounds (a caller pressing 2 for ever).
            while failures < self.settings.menu.max_attempts and rounds < 2 * self.settings.menu.max_attempts:
                rounds += 1
                if number is None:
                    number = await self._keyed_number(agi, record)
                    failures += number is None
                    confirmed = "keyed"
                    continue
                await play(agi, "STREAM FILE", self.prompts["callback_number"], '""')
                await agi.command(f'SAY DIGITS {number} ""')
                key = (await play(agi, "GET DATA", self.prompts["callback_confirm"],
                                  f"{self.settings.menu.digit_timeout_ms} 1")).digits()
                if key == "1":
                    registered = await self._register(record, agi.linkedid, department, reason, number, confirmed,
                                                      caller_number(agi.env))
                    if not registered:
                        return False       # not stored: a person, in the queue
                    await play(agi, "STREAM FILE", self.prompts["callback_registered"], '""')
                    await agi.command("HANGUP")
                    return True
                if key == "2":
                    number = None
                    continue
                failures += 1
                record("callback.invalid_key", {"key": key or None})
                await play(agi, "STREAM FILE", self.prompts["callback_invalid"], '""')
        except AgiHangup:
            # They asked for the callback and left before confirming: call the caller ID.
            fallback = caller_number(agi.env)
            if registered:
                pass
            elif fallback is not None:
                await self._register(record, agi.linkedid, department, reason, fallback, "hung_up", fallback)
            else:
                record("callback.abandoned", {"reason": "hung up before a number was confirmed"})
            raise
        except PromptFailed as failed:
            self._prompt_failed(record, failed)
            if registered:      # the goodbye could not be played; the callback stands
                await agi.command("HANGUP")
            return registered
        record("callback.unconfirmed", {"failures": failures, "rounds": rounds})
        await self._say_declined(agi, record)
        return False

    async def _keyed_number(self, agi: AsyncAgiChannel, record: Record) -> str | None:
        """The caller keys a number ending with # (GET DATA stops at #)."""
        digits = (await play(agi, "GET DATA", self.prompts["callback_enter"],
                             f"{ENTER_TIMEOUT_MS} {MAX_DIGITS}")).digits()
        if CALLBACK_NUMBER.fullmatch(digits):
            return digits
        record("callback.invalid_number", {"digits": len(digits)})
        await play(agi, "STREAM FILE", self.prompts["callback_invalid"], '""')
        return None

    async def _register(self, record: Record, linkedid: str, department: Department, reason: str,
                        number: str, confirmed: str, caller: str | None) -> bool:
        """Open the callback ticket; False (logged, on the timeline) when it could not be stored."""
        try:
            opened = await self.service.open_callback_request(linkedid, number, reason, department=department.code,
                                                              caller_number=caller, confirmed=confirmed)
        except Exception as exc:   # the database away, ...: the caller stays with us, queued
            log.error("callback.register_failed", error=repr(exc), number_digits=len(number))
            record("callback.register_failed", {"error": str(exc), "number": number})
            return False
        record("callback.requested", {"ticket_id": opened.ticket["id"], "ticket": opened.ticket["number"],
                                      "number": number, "confirmed": confirmed, "reason": reason})
        log.info("callback.requested", ticket=opened.ticket["number"], confirmed=confirmed, reason=reason)
        return True

    async def _say_declined(self, agi: AsyncAgiChannel, record: Record) -> None:
        try:
            await play(agi, "STREAM FILE", self.prompts["callback_declined"], '""')
        except PromptFailed as failed:
            self._prompt_failed(record, failed)

    @staticmethod
    def _prompt_failed(record: Record, failed: PromptFailed) -> bool:
        log.error("callback.prompt_failed", file=failed.prompt, result=failed.result)
        record("callback.prompt_failed", {"prompt": failed.prompt, "result": failed.result})
        return False


def callback_script(offer: CallbackOffer, settings: Settings):
    """The AGI script ``callback`` (app_queue's exit key, dialplan ``[hotline-callback]``):
    the caller pressed 1 in the queue named by the dialplan (``${QUEUENAME}``)."""
    async def run(agi: AsyncAgiChannel, record: Record, args: list[str]) -> None:
        queue = args[0] if args else ""
        department = settings.department_for_queue(queue) or settings.department(settings.menu.fallback_department)
        try:
            if not await offer.offer(agi, record, department, "waited"):
                await enter_queue(agi, department.queue)
        except AgiHangup:
            record("callback.caller_left", {})
        except (AgiCommandError, asyncio.TimeoutError) as exc:
            log.error("callback.failed", error=repr(exc), detail="the dialplan queues the caller")
            record("callback.failed", {"error": str(exc)})
            try:
                await agi.command("ASYNCAGI BREAK", timeout=5.0)
            except (AgiHangup, AgiCommandError, asyncio.TimeoutError):
                pass

    return run

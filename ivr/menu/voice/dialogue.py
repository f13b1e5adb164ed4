"""One caller's conversation with the spoken menu: what it ends with
(:class:`VoiceOutcome`), how it reacts to each answer (:class:`Reaction`), and
the dialogue itself (:class:`_Dialogue`, started by
:meth:`~ivr.menu.voice.service.VoiceMenu.listen`)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Callable, Mapping

from asr.audiosocket.session import CallSession
from routing import Action, Decision, timeline_detail
from routing.confirm import Answer, confirm_answer
from hotline.logs import get_logger
from ivr.menu.async_agi import AgiCommandError, AgiHangup, AsyncAgiChannel
from ivr.menu.prompts import PromptUnavailable
from ivr.menu.voice.listening import Heard, HeardKind, ask, say

if TYPE_CHECKING:
    from ivr.menu.voice.service import VoiceMenu

log = get_logger(__name__)

Record = Callable[[str, Mapping[str, object]], None]

EXEC_GRACE = 5.0          # after our hangup frame, Asterisk ends the EXEC within this
KEYPAD_KEY = "#"


class Outcome(str, Enum):
    """How the spoken menu ended (``voice.ended``'s ``outcome``)."""

    ROUTE = "route"                # queue the caller at ``department``
    KEYPAD = "keypad"              # the keypad menu, with ``key`` already pressed if not empty
    RESOLVED = "resolved"          # a self-service answer was enough: say goodbye, end the call
    UNAVAILABLE = "unavailable"    # speech could not start: the keypad menu with its greeting
    GONE = "gone"                  # the AGI session has ended: nothing more to do here


class Reaction(str, Enum):
    """What the menu did about what it heard (the ``reaction`` of ``voice.heard``,
    ``voice.key`` and ``voice.failed`` rows)."""

    ROUTED = "routed"                            # transfer announced, caller routed
    OPERATOR = "operator"                        # a person asked for (words or the operator key)
    PLAYED_ANSWER = "played_answer"              # a self-service answer spoken
    REPROMPTED = "reprompted"                    # asked once more
    KEYPAD = "keypad"                            # on to the keypad menu
    KEYPAD_GREETING = "keypad_greeting"          # on to the keypad menu, with its greeting
    DIALPLAN_FALLBACK = "dialplan_fallback"      # the AGI session ended: the dialplan's queue
    GOODBYE = "goodbye"                          # nothing more asked after an answer
    CONFIRMED_YES = "confirmed_yes"
    CONFIRMED_NO = "confirmed_no"                # no to every department offered
    CONFIRMED_ALTERNATIVE = "confirmed_alternative"  # no to the first, yes to the alternative offered next
    CONFIRM_UNCLEAR = "confirm_unclear"          # no yes or no twice: asked again from the start
    CONFIRM_INTERRUPTED = "confirm_interrupted"  # a key, a failure or the end of the connection
    ROUTED_CORRECTION = "routed_correction"      # "不是，我要办社保": routed to the one named


@dataclass(frozen=True)
class VoiceOutcome:
    """What the spoken menu ended with: see :class:`Outcome` for ``action``;
    ``department`` for :attr:`Outcome.ROUTE`, ``key`` the key already pressed."""

    action: Outcome
    department: str | None = None
    key: str = ""
    reason: str = ""


class _Dialogue:
    def __init__(self, menu: VoiceMenu, agi: AsyncAgiChannel, record: Record):
        self.menu = menu
        self.agi = agi
        self.record = record
        self.voice = menu.settings.voice
        self.answers = 0
        self.turns = 0          # answers heard (speech or silence)

    async def run(self) -> VoiceOutcome:
        call_uuid = uuid.uuid4()
        session = self.menu.server.session(call_uuid, call_id=self.agi.linkedid,
                                           grammar=self.menu.question_grammar)
        command = f"EXEC AudioSocket {call_uuid},{self.menu.audiosocket_address}"
        execution = asyncio.create_task(self.agi.command(command, timeout=24 * 3600))
        self.record("voice.started", {"audiosocket_uuid": str(call_uuid),
                                      "address": self.menu.audiosocket_address})
        if not await self._connected(session, execution):
            return await self._not_connected(session, execution)
        outcome = VoiceOutcome(Outcome.KEYPAD, reason="internal error")
        try:
            outcome = await self._converse(session)
        except PromptUnavailable as exc:
            log.error("voice.prompt_unavailable", error=str(exc))
            self.record("voice.failed", {"reason": "prompt_unavailable", "detail": str(exc)})
            outcome = VoiceOutcome(Outcome.KEYPAD, reason="prompt_unavailable")
        except Exception as exc:  # a bug here must not leave the caller in silence
            log.exception("voice.dialogue_failed", error=repr(exc))
            self.record("voice.failed", {"reason": "internal_error", "detail": repr(exc)})
            outcome = VoiceOutcome(Outcome.KEYPAD, reason="internal_error")
        finally:
            await self._leave_audiosocket(session, execution)
        self.record("voice.ended", {"outcome": outcome.action.value, "department": outcome.department,
                                    "key": outcome.key or None, "reason": outcome.reason})
        return outcome

    # ----- connection ---------------------------------------------------------

    async def _connected(self, session: CallSession, execution: asyncio.Task) -> bool:
        waiting = asyncio.create_task(session.wait_connected(self.voice.connect_timeout))
        await asyncio.wait({waiting, execution}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            return False
        return waiting.result()

    async def _not_connected(self, session: CallSession, execution: asyncio.Task) -> VoiceOutcome:
        """Asterisk did not reach our AudioSocket server. If the EXEC failed
        (``200 result=-1``), res_agi has ended the AGI session and the dialplan
        goes on to the general queue; if it is still trying, the keypad menu's
        commands queue behind it."""
        await session.close()
        if execution.done():
            exc = execution.exception()
            detail = f"EXEC AudioSocket failed: {exc or execution.result().line}"
            log.error("voice.audiosocket_failed", detail=detail, address=self.menu.audiosocket_address)
            if isinstance(exc, AgiHangup):
                self.record("voice.failed", {"reason": "audiosocket_failed", "detail": detail,
                                             "reaction": Reaction.DIALPLAN_FALLBACK.value})
                return VoiceOutcome(Outcome.GONE, reason="AudioSocket failed; AGI ended")
        else:
            detail = f"no connection within {self.voice.connect_timeout} s"
            log.error("voice.audiosocket_unreachable", detail=detail, address=self.menu.audiosocket_address)
            execution.add_done_callback(lambda t: t.cancelled() or t.exception())
        self.record("voice.failed", {"reason": "audiosocket_unreachable", "detail": detail,
                                     "reaction": Reaction.KEYPAD_GREETING.value})
        return VoiceOutcome(Outcome.UNAVAILABLE, reason="audiosocket_unreachable")

    async def _leave_audiosocket(self, session: CallSession, execution: asyncio.Task) -> None:
        """Send the hangup frame and wait for Asterisk to end the EXEC (200 result=0)."""
        if session.ended is None:
            await session.hangup()
        try:
            await asyncio.wait_for(asyncio.shield(execution), EXEC_GRACE)
        except asyncio.TimeoutError:
            log.error("voice.audiosocket_exec_stuck", grace=EXEC_GRACE)
            await session.close()
            execution.add_done_callback(lambda t: t.cancelled() or t.exception())
        except AgiHangup:
            raise
        except AgiCommandError as exc:
            log.error("voice.audiosocket_exec_failed", error=str(exc))

    # ----- the dialogue -------------------------------------------------------

    async def _converse(self, session: CallSession) -> VoiceOutcome:
        attempt = 1
        prompt, values = "greeting", {}
        after_answer = False
        while True:
            heard = await self._ask(session, prompt, values)
            outcome = await self._keys_and_failures(session, heard)
            if outcome is not None:
                return outcome
            self.turns += 1
            if heard.kind is HeardKind.SILENCE and after_answer:
                self.record("voice.heard", {"transcripts": [], "reaction": Reaction.GOODBYE.value,
                                            "after_answer": True})
                await self._say(session, "goodbye")
                return VoiceOutcome(Outcome.RESOLVED, reason="self-service answer; nothing more asked")
            decision = await self.menu.decide(heard.text, attempt=attempt)
            decided_at = asyncio.get_running_loop().time()
            reaction, outcome = await self._react(session, decision, heard)
            self._record_heard(decision, heard, reaction, decided_at)
            if outcome is not None:
                return outcome
            if reaction is Reaction.PLAYED_ANSWER:
                after_answer, attempt = True, 1
                if self.answers >= self.voice.max_answers:
                    await self._say(session, "goodbye")
                    return VoiceOutcome(Outcome.RESOLVED, reason=f"{self.answers} self-service answers")
                prompt, values = "followup", {}
            else:
                after_answer = False
                attempt += 1
                prompt, values = "reprompt", {}

    async def _keys_and_failures(self, session: CallSession, heard: Heard) -> VoiceOutcome | None:
        """:meth:`_not_speech`, and the operator key announced as the spoken
        request for a person is ("正在为您转接人工服务"), so the key does not
        leave the caller wondering (capture e2e, issue 9 item 6)."""
        outcome = self._not_speech(heard)
        if outcome is not None and outcome.action is Outcome.ROUTE and \
                outcome.key == self.menu.settings.menu.operator_digit:
            await self._say(session, "operator")
        return outcome

    def _not_speech(self, heard: Heard) -> VoiceOutcome | None:
        """Keys, failures and the end of the connection, decided without the router."""
        if heard.kind is HeardKind.KEY:
            operator = heard.key == self.menu.settings.menu.operator_digit
            reaction = Reaction.OPERATOR if operator else Reaction.KEYPAD
            self.record("voice.key", {"key": heard.key, "reaction": reaction.value})
            if operator:
                return VoiceOutcome(Outcome.ROUTE, department=self.menu.knowledge.fallback_department,
                                    key=heard.key, reason="operator key")
            return VoiceOutcome(Outcome.KEYPAD, key="" if heard.key == KEYPAD_KEY else heard.key,
                                reason=f"key {heard.key}")
        if heard.kind is HeardKind.FAILED and heard.detail == "unavailable" and self.turns == 0:
            self.record("voice.failed", {"reason": "unavailable", "reaction": Reaction.KEYPAD_GREETING.value})
            return VoiceOutcome(Outcome.UNAVAILABLE, reason="no recogniser for this call")
        if heard.kind is HeardKind.FAILED:
            self.record("voice.failed", {"reason": heard.detail or "recognizer",
                                         "reaction": Reaction.KEYPAD.value})
            return VoiceOutcome(Outcome.KEYPAD, reason=f"recognition failed: {heard.detail}")
        if heard.kind is HeardKind.ENDED:
            self.record("voice.failed", {"reason": "audiosocket_ended", "detail": heard.detail})
            return VoiceOutcome(Outcome.KEYPAD, reason=f"audiosocket ended: {heard.detail}")
        return None

    async def _react(self, session: CallSession, decision: Decision,
                     heard: Heard) -> tuple[Reaction, VoiceOutcome | None]:
        """Do what the decision says; returns (reaction, outcome or None to go on)."""
        action = decision.action
        names = self.menu.knowledge.department_names
        if action is Action.OPERATOR:
            await self._say(session, "operator")
            return Reaction.OPERATOR, VoiceOutcome(Outcome.ROUTE, department=decision.department,
                                                   reason="operator asked")
        if action is Action.ROUTE:
            await self._say(session, "transfer", department=names[decision.department], code=decision.department)
            return Reaction.ROUTED, VoiceOutcome(Outcome.ROUTE, department=decision.department, reason="speech")
        if action is Action.SELF_SERVICE:
            item = self.menu.knowledge.items[decision.item]
            self.answers += 1
            await session.play(await self.menu.prompts.speak(item.answer), barge_in=True)
            return Reaction.PLAYED_ANSWER, None
        if action is Action.CONFIRM:
            return await self._confirm(session, decision)
        if decision.unplaced:
            self.menu.store_unplaced(heard.text, heard.confidence, self.agi.linkedid, decision)
        if action is Action.KEYPAD:
            return Reaction.KEYPAD, VoiceOutcome(Outcome.KEYPAD, key=decision.key or "", reason=decision.reason)
        return Reaction.REPROMPTED, None

    async def _confirm(self, session: CallSession, decision: Decision) -> tuple[Reaction, VoiceOutcome | None]:
        """Ask whether the decision's department is right; after a plain no, offer
        its alternative (the other department named, or the classifier's next) once
        before asking again from the start."""
        offers = [decision.department] + ([decision.alternative] if decision.alternative else [])
        if self.menu.confirm_grammar is not None:
            await session.set_grammar(self.menu.confirm_grammar)
        try:
            for number, department in enumerate(offers):
                reaction, outcome, heard = await self._offer(session, department, alternative=number > 0)
                if reaction is not Reaction.CONFIRMED_NO:
                    if reaction is Reaction.CONFIRMED_YES and number > 0:
                        reaction = Reaction.CONFIRMED_ALTERNATIVE
                    return reaction, outcome
                corrected = await self._correction(session, heard, department)
                if corrected is not None:
                    return Reaction.CONFIRMED_NO, corrected
            return Reaction.CONFIRMED_NO, None
        finally:
            if self.menu.confirm_grammar is not None and session.connected:
                await session.set_grammar(self.menu.question_grammar)

    async def _offer(self, session: CallSession, department: str, *,
                     alternative: bool) -> tuple[Reaction, VoiceOutcome | None, Heard]:
        """One department offered ("您是要办理……业务吗？"), asked twice if the answer
        is neither yes nor no."""
        name = self.menu.knowledge.department_names[department]
        prompt: tuple[str, dict[str, str]] = ("confirm", {"department": name, "code": department})
        for turn in (1, 2):
            heard = await self._ask(session, *prompt)
            if heard.kind in (HeardKind.FAILED, HeardKind.ENDED) or (
                    heard.kind is HeardKind.KEY and heard.key in (
                        self.menu.settings.menu.operator_digit, KEYPAD_KEY)):
                outcome = await self._keys_and_failures(session, heard)
                return Reaction.CONFIRM_INTERRUPTED, outcome, heard
            answer = confirm_answer(heard.text, heard.key or None) if heard.kind is not HeardKind.SILENCE \
                else Answer.UNCLEAR
            row = {"department": department, "transcript": heard.text or None, "key": heard.key or None,
                   "answer": answer.value, "turn": turn}
            self.record("voice.confirm", {**row, "alternative": True} if alternative else row)
            if answer is Answer.YES:
                await self._say(session, "transfer", department=name, code=department)
                return Reaction.CONFIRMED_YES, VoiceOutcome(Outcome.ROUTE, department=department,
                                                            reason="confirmed" + (" (alternative)" if alternative
                                                                                  else "")), heard
            if answer is Answer.NO:
                return Reaction.CONFIRMED_NO, None, heard
            prompt = ("confirm_again", {})
        return Reaction.CONFIRM_UNCLEAR, None, heard

    async def _correction(self, session: CallSession, heard: Heard, rejected: str) -> VoiceOutcome | None:
        """"不是，我要办社保": a no that names another department is routed there."""
        if heard.text:
            decision = await self.menu.decide(heard.text, attempt=1)
            if decision.action is Action.ROUTE and decision.department != rejected:
                self._record_heard(decision, heard, Reaction.ROUTED_CORRECTION,
                                   asyncio.get_running_loop().time())
                name = self.menu.knowledge.department_names[decision.department]
                await self._say(session, "transfer", department=name, code=decision.department)
                return VoiceOutcome(Outcome.ROUTE, department=decision.department,
                                    reason="corrected at confirmation")
        return None

    def _record_heard(self, decision: Decision, heard: Heard, reaction: Reaction, decided_at: float) -> None:
        extra: dict[str, object] = {}
        if heard.overrun is not None:
            extra["answer_overrun"] = heard.overrun.value   # still talking when the answer's time ended
        if heard.received_at is not None:
            extra["decision_ms"] = round((decided_at - heard.received_at) * 1000, 1)
        self.record("voice.heard", timeline_detail(
            decision, transcripts=[heard.text] if heard.text else [], partials=heard.partials,
            asr_confidence=heard.confidence, reaction=reaction.value, extra=extra))
        log.info("voice.decided", action=decision.action.value, department=decision.department,
                 confidence=round(decision.confidence, 3), reaction=reaction.value, **extra)

    # ----- prompts and listening ---------------------------------------------

    async def _say(self, session: CallSession, name: str, **values: str) -> None:
        await say(session, self.menu.prompts, name, **values)

    async def _ask(self, session: CallSession, name: str, values: Mapping[str, str]) -> Heard:
        return await ask(session, self.menu.prompts, name, values, answer_timeout=self.voice.answer_timeout,
                         answer_overrun=self.voice.answer_overrun)

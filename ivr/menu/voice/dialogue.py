"""The spoken menu for one caller (the :class:`~ivr.menu.session.IntentListener`
the keypad menu hands over to first).

How it reaches the caller's audio: inside the caller's AsyncAGI session the menu
runs ``EXEC AudioSocket <uuid>,<host:port>``. Asterisk connects to our
AudioSocket server and streams the caller's audio; we send the prompts back on
the same socket, so the caller can talk over them (barge-in) and keys arrive as
DTMF frames. When the dialogue is over we send the hangup frame (``00 00 00``):
Asterisk leaves AudioSocket with ``200 result=0`` and the AGI session goes on
(routing with ``EXEC Queue``, or the keypad menu).

The dialogue (DESIGN.md, "The voice menu"): greeting → the caller speaks → the
intent router decides → route (with "正在为您转接……"), play a short
self-service answer, confirm ("您是要办理……业务吗？", yes/no by voice or key 1/2),
re-prompt once, then the keypad menu. "人工"/0 at any time: a person. A key
other than 0 goes to the keypad menu as if pressed there; # opens it.
Anything wrong with speech (no model, no connection, the recogniser failed,
no prompt audio) ends in the keypad menu, never in silence.

Every turn is a timeline row: ``voice.heard`` holds the transcript(s), the
partial results, the recogniser's confidence, the chosen intent, the router's
confidence and reason, the menu's reaction and the decision time.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping

from asr.audiosocket import AudioSocketServer
from asr.audiosocket.events import Dtmf, Ended
from asr.audiosocket.session import CallSession
from asr.engine.results import Final, Partial, StreamFailed
from routing import Action, Decision, Knowledge, route, timeline_detail
from routing.confirm import Answer, confirm_answer
from routing.vocabulary import CONFIRM_NO, CONFIRM_YES, OPERATOR_TERMS
from hotline.logs import get_logger
from hotline.settings import Settings
from ivr.menu.async_agi import AgiCommandError, AgiHangup, AsyncAgiChannel
from ivr.menu.prompts import PromptLibrary, PromptUnavailable

log = get_logger(__name__)

Record = Callable[[str, Mapping[str, object]], None]
# (transcript, recogniser confidence, linkedid, decision) -> stored for the knowledge-base editors
UnplacedSink = Callable[[str, "float | None", str, Mapping[str, object]], Awaitable[object]]

EXEC_GRACE = 5.0          # after our hangup frame, Asterisk ends the EXEC within this
KEYPAD_KEY = "#"
MAX_PARTIALS_KEPT = 5


@dataclass(frozen=True)
class VoiceOutcome:
    """What the spoken menu ended with.

    ``action``: ``route`` (queue the caller at ``department``), ``keypad`` (the
    keypad menu, with ``key`` already pressed if not empty), ``resolved`` (a
    self-service answer was enough: say goodbye and end the call), ``unavailable``
    (speech could not start: the keypad menu with its greeting), ``gone`` (the
    AGI session has ended: nothing more to do here)."""

    action: str
    department: str | None = None
    key: str = ""
    reason: str = ""


@dataclass
class _Heard:
    kind: str                      # speech | silence | key | failed | ended
    text: str = ""
    key: str = ""
    confidence: float | None = None
    partials: list[str] = field(default_factory=list)
    received_at: float | None = None
    detail: str = ""


class VoiceMenu:
    """Shared by every call of the process; :meth:`listen` runs one caller's dialogue."""

    def __init__(self, settings: Settings, server: AudioSocketServer, knowledge: Knowledge,
                 prompts: PromptLibrary, unplaced: UnplacedSink | None = None):
        self.settings = settings
        self.server = server
        self.knowledge = knowledge
        self.prompts = prompts
        self.unplaced = unplaced
        self.question_grammar = _question_grammar(knowledge) if settings.voice.listen_grammar == "knowledge" else None
        self.confirm_grammar = (sorted(set(CONFIRM_YES) | set(CONFIRM_NO)) + ["[unk]"]
                                if self.question_grammar is not None else None)
        self._tasks: set[asyncio.Task] = set()

    @property
    def audiosocket_address(self) -> str:
        """host:port for Asterisk's AudioSocket(): configured, or our own listening socket."""
        return (self.settings.voice.audiosocket_address
                or f"{self.settings.asr.audiosocket_host}:{self.server.port}")

    async def listen(self, agi: AsyncAgiChannel, record: Record) -> VoiceOutcome:
        return await _Dialogue(self, agi, record).run()

    def store_unplaced(self, text: str, confidence: float | None, linkedid: str, decision: Decision) -> None:
        """Keep a question nobody could place, without holding up the caller."""
        if self.unplaced is None:
            return

        async def store() -> None:
            try:
                await self.unplaced(text, confidence, linkedid, decision.to_dict())
            except Exception as exc:  # the caller goes on; the editors lose one question, logged
                log.error("voice.unplaced_not_stored", error=repr(exc), text=text)

        task = asyncio.create_task(store())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _question_grammar(knowledge: Knowledge) -> list[str]:
    """The menu's words for a grammar-restricted recogniser: every knowledge-base
    keyword as written (a recogniser splits them on spaces), the operator words,
    and ``[unk]`` for the rest."""
    phrases = {keyword for item in knowledge.items.values() for keyword in item.keywords}
    phrases |= set(OPERATOR_TERMS)
    return sorted(p for p in phrases if p.strip()) + ["[unk]"]


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
        outcome = VoiceOutcome("keypad", reason="internal error")
        try:
            outcome = await self._converse(session)
        except PromptUnavailable as exc:
            log.error("voice.prompt_unavailable", error=str(exc))
            self.record("voice.failed", {"reason": "prompt_unavailable", "detail": str(exc)})
            outcome = VoiceOutcome("keypad", reason="prompt_unavailable")
        except Exception as exc:  # a bug here must not leave the caller in silence
            log.exception("voice.dialogue_failed", error=repr(exc))
            self.record("voice.failed", {"reason": "internal_error", "detail": repr(exc)})
            outcome = VoiceOutcome("keypad", reason="internal_error")
        finally:
            await self._leave_audiosocket(session, execution)
        self.record("voice.ended", {"outcome": outcome.action, "department": outcome.department,
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
                                             "reaction": "dialplan_fallback"})
                return VoiceOutcome("gone", reason="AudioSocket failed; AGI ended")
        else:
            detail = f"no connection within {self.voice.connect_timeout} s"
            log.error("voice.audiosocket_unreachable", detail=detail, address=self.menu.audiosocket_address)
            execution.add_done_callback(lambda t: t.cancelled() or t.exception())
        self.record("voice.failed", {"reason": "audiosocket_unreachable", "detail": detail,
                                     "reaction": "keypad_greeting"})
        return VoiceOutcome("unavailable", reason="audiosocket_unreachable")

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
            outcome = self._not_speech(heard)
            if outcome is not None:
                return outcome
            self.turns += 1
            if heard.kind == "silence" and after_answer:
                self.record("voice.heard", {"transcripts": [], "reaction": "goodbye", "after_answer": True})
                await self._say(session, "goodbye")
                return VoiceOutcome("resolved", reason="self-service answer; nothing more asked")
            decision = route(heard.text, self.menu.knowledge, attempt=attempt)
            decided_at = asyncio.get_running_loop().time()
            reaction, outcome = await self._react(session, decision, heard)
            self._record_heard(decision, heard, reaction, decided_at)
            if outcome is not None:
                return outcome
            if reaction == "played_answer":
                after_answer, attempt = True, 1
                if self.answers >= self.voice.max_answers:
                    await self._say(session, "goodbye")
                    return VoiceOutcome("resolved", reason=f"{self.answers} self-service answers")
                prompt, values = "followup", {}
            else:
                after_answer = False
                attempt += 1
                prompt, values = "reprompt", {}

    def _not_speech(self, heard: _Heard) -> VoiceOutcome | None:
        """Keys, failures and the end of the connection, decided without the router."""
        if heard.kind == "key":
            operator = heard.key == self.menu.settings.menu.operator_digit
            self.record("voice.key", {"key": heard.key, "reaction": "operator" if operator else "keypad"})
            if operator:
                return VoiceOutcome("route", department=self.menu.knowledge.fallback_department,
                                    key=heard.key, reason="operator key")
            return VoiceOutcome("keypad", key="" if heard.key == KEYPAD_KEY else heard.key,
                                reason=f"key {heard.key}")
        if heard.kind == "failed" and heard.detail == "unavailable" and self.turns == 0:
            self.record("voice.failed", {"reason": "unavailable", "reaction": "keypad_greeting"})
            return VoiceOutcome("unavailable", reason="no recogniser for this call")
        if heard.kind == "failed":
            self.record("voice.failed", {"reason": heard.detail or "recognizer", "reaction": "keypad"})
            return VoiceOutcome("keypad", reason=f"recognition failed: {heard.detail}")
        if heard.kind == "ended":
            self.record("voice.failed", {"reason": "audiosocket_ended", "detail": heard.detail})
            return VoiceOutcome("keypad", reason=f"audiosocket ended: {heard.detail}")
        return None

    async def _react(self, session: CallSession, decision: Decision,
                     heard: _Heard) -> tuple[str, VoiceOutcome | None]:
        """Do what the decision says; returns (reaction, outcome or None to go on)."""
        action = decision.action
        names = self.menu.knowledge.department_names
        if action is Action.OPERATOR:
            await self._say(session, "operator")
            return "operator", VoiceOutcome("route", department=decision.department, reason="operator asked")
        if action is Action.ROUTE:
            await self._say(session, "transfer", department=names[decision.department], code=decision.department)
            return "routed", VoiceOutcome("route", department=decision.department, reason="speech")
        if action is Action.SELF_SERVICE:
            item = self.menu.knowledge.items[decision.item]
            self.answers += 1
            await session.play(await self.menu.prompts.speak(item.answer), barge_in=True)
            return "played_answer", None
        if action is Action.CONFIRM:
            return await self._confirm(session, decision)
        if decision.unplaced:
            self.menu.store_unplaced(heard.text, heard.confidence, self.agi.linkedid, decision)
        if action is Action.KEYPAD:
            return "keypad", VoiceOutcome("keypad", key=decision.key or "", reason=decision.reason)
        return "reprompted", None

    async def _confirm(self, session: CallSession, decision: Decision) -> tuple[str, VoiceOutcome | None]:
        department = decision.department
        name = self.menu.knowledge.department_names[department]
        if self.menu.confirm_grammar is not None:
            await session.set_grammar(self.menu.confirm_grammar)
        try:
            prompt: tuple[str, dict[str, str]] = ("confirm", {"department": name, "code": department})
            for turn in (1, 2):
                heard = await self._ask(session, *prompt)
                if heard.kind in ("failed", "ended") or (heard.kind == "key" and heard.key in (
                        self.menu.settings.menu.operator_digit, KEYPAD_KEY)):
                    outcome = self._not_speech(heard)
                    return "confirm_interrupted", outcome
                answer = confirm_answer(heard.text, heard.key or None) if heard.kind != "silence" \
                    else Answer.UNCLEAR
                self.record("voice.confirm", {"department": department, "transcript": heard.text or None,
                                              "key": heard.key or None, "answer": answer.value, "turn": turn})
                if answer is Answer.YES:
                    await self._say(session, "transfer", department=name, code=department)
                    return "confirmed_yes", VoiceOutcome("route", department=department, reason="confirmed")
                if answer is Answer.NO:
                    return await self._correction(session, heard, department)
                prompt = ("confirm_again", {})
            return "confirm_unclear", None
        finally:
            if self.menu.confirm_grammar is not None and session.connected:
                await session.set_grammar(self.menu.question_grammar)

    async def _correction(self, session: CallSession, heard: _Heard,
                          rejected: str) -> tuple[str, VoiceOutcome | None]:
        """"不是，我要办社保": a no that names another department is routed there."""
        if heard.text:
            decision = route(heard.text, self.menu.knowledge, attempt=1)
            if decision.action is Action.ROUTE and decision.department != rejected:
                self._record_heard(decision, heard, "routed_correction", asyncio.get_running_loop().time())
                name = self.menu.knowledge.department_names[decision.department]
                await self._say(session, "transfer", department=name, code=decision.department)
                return "confirmed_no", VoiceOutcome("route", department=decision.department,
                                                    reason="corrected at confirmation")
        return "confirmed_no", None

    def _record_heard(self, decision: Decision, heard: _Heard, reaction: str, decided_at: float) -> None:
        extra: dict[str, object] = {}
        if heard.received_at is not None:
            extra["decision_ms"] = round((decided_at - heard.received_at) * 1000, 1)
        self.record("voice.heard", timeline_detail(
            decision, transcripts=[heard.text] if heard.text else [], partials=heard.partials,
            asr_confidence=heard.confidence, reaction=reaction, extra=extra))
        log.info("voice.decided", action=decision.action.value, department=decision.department,
                 confidence=round(decision.confidence, 3), reaction=reaction, **extra)

    # ----- prompts and listening ---------------------------------------------

    async def _say(self, session: CallSession, name: str, **values: str) -> None:
        """A prompt the caller need not answer (transfer, goodbye): no barge-in."""
        try:
            pcm = await self.menu.prompts.prompt(name, **values)
        except PromptUnavailable as exc:
            log.error("voice.prompt_unavailable", prompt=name, error=str(exc))
            return
        await session.play(pcm, barge_in=False)

    async def _ask(self, session: CallSession, name: str, values: Mapping[str, str]) -> _Heard:
        """Play a prompt (the caller may talk or press a key over it) and return
        the first answer: speech, silence, a key, or why there is none."""
        self._drop_stale(session)
        pcm = await self.menu.prompts.prompt(name, **values)
        playing = asyncio.create_task(session.play(pcm, barge_in=True))
        partials: list[str] = []
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        try:
            while True:
                if deadline is None and playing.done():
                    deadline = loop.time() + self.voice.answer_timeout
                timeout = 0.05 if deadline is None else max(0.0, deadline - loop.time())
                event = await session.next_event(timeout)
                if event is None:
                    if deadline is not None and loop.time() >= deadline:
                        return _Heard("silence", partials=partials)
                    continue
                if isinstance(event, Partial):
                    if event.text and (not partials or partials[-1] != event.text):
                        partials = (partials + [event.text])[-MAX_PARTIALS_KEPT:]
                elif isinstance(event, Final):
                    if event.text:
                        return _Heard("speech", text=event.text, confidence=event.confidence,
                                      partials=partials, received_at=event.received_at)
                    if playing.done():
                        return _Heard("silence", partials=partials)
                elif isinstance(event, Dtmf):
                    return _Heard("key", key=event.digit)
                elif isinstance(event, StreamFailed):
                    return _Heard("failed", detail=event.reason)
                elif isinstance(event, Ended):
                    return _Heard("ended", detail=event.reason)
        finally:
            if not playing.done():
                session.stop_playback()
            await playing

    @staticmethod
    def _drop_stale(session: CallSession) -> None:
        """Recognition results from before this prompt are answers to nothing."""
        kept = []
        while True:
            event = session.next_event_nowait()
            if event is None:
                break
            if not isinstance(event, (Partial, Final)):
                kept.append(event)
        for event in kept:
            session.put_back(event)

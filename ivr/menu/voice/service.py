"""What the spoken menu shares between calls: the :class:`VoiceMenu` every
call's dialogue runs in, and :class:`VoiceService`, which starts it in
``hotline serve`` (the speech model and its recogniser pool, the AudioSocket
server, the knowledge base, the prompts).

A missing or broken model is a clear error at start-up, and the service runs
with the keypad menu only (it does not refuse to start: callers must still get
through)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
from typing import Any, Awaitable, Callable, Mapping

import asyncpg

from asr.audiosocket import AudioSocketServer
from asr.engine import ModelError, RecognizerPool
from routing import Decision, Knowledge, route
from routing.classifier import Classifier
from routing.classifier import ModelError as RoutingModelError
from routing.vocabulary import CONFIRM_NO, CONFIRM_YES, OPERATOR_TERMS
from knowledge.store import record_unplaced
from hotline.logs import get_logger
from hotline.settings import Settings
from ivr.menu.async_agi import AsyncAgiChannel
from ivr.menu.prompts import PromptLibrary
from ivr.menu.voice.dialogue import Record, VoiceOutcome, _Dialogue

log = get_logger(__name__)

# The router's worker threads: a decision embeds the transcript (~15 ms of C code
# that releases the GIL), which must not stall the event loop that carries every
# call's audio and AMI events. Two: one caller's decision does not queue behind
# another's (the embedding engine itself runs one utterance at a time).
ROUTING_THREADS = 2

# (transcript, recogniser confidence, linkedid, decision) -> stored for the knowledge-base editors
UnplacedSink = Callable[[str, "float | None", str, Mapping[str, object]], Awaitable[object]]


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
        self._router = concurrent.futures.ThreadPoolExecutor(ROUTING_THREADS, thread_name_prefix="router")

    async def decide(self, text: str, *, attempt: int) -> Decision:
        """The router's decision on one final transcript, made off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._router, lambda: route(text, self.knowledge, attempt=attempt))

    def close(self) -> None:
        self._router.shutdown(wait=False, cancel_futures=True)

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


class VoiceService:
    """The running spoken menu of ``hotline serve``: :attr:`menu` is the
    :class:`~ivr.menu.session.IntentListener` the keypad menu hands over to."""

    def __init__(self, menu: VoiceMenu, server: AudioSocketServer, pool: RecognizerPool):
        self.menu = menu
        self.server = server
        self.pool = pool
        self._warm_up: asyncio.Task | None = None

    @classmethod
    async def start(cls, settings: Settings, db: asyncpg.Pool | None) -> "VoiceService | None":
        """The running spoken menu, or None (keypad only) with the reason logged."""
        if not settings.voice.enabled:
            log.info("voice.disabled", reason="[voice] enabled = false")
            return None
        if not settings.asr.enabled:
            log.warning("voice.disabled", reason="no speech model configured ([asr] model_path / "
                        "HOTLINE_ASR_MODEL_PATH); the menu is keypad only")
            return None
        try:
            knowledge = await asyncio.to_thread(Knowledge.from_files, None, settings)
        except (OSError, ValueError) as exc:
            log.error("voice.disabled", reason=f"knowledge base unusable: {exc}")
            return None
        try:
            classifier = await asyncio.to_thread(lambda: knowledge.classifier)
            model = classifier.info
            # Load the embedding engine now, not on the first caller's answer.
            alone = await asyncio.to_thread(classifier.ready)
            log.info("routing.model_loaded", version=model.version, corpus_hash=model.corpus_hash,
                     model_sha256=model.model_sha256, features=model.features, utterances=model.corpus_size,
                     embedding=model.embedding or None)
            if alone:
                log.error("routing.embeddings_unavailable", reason=alone,
                          fallback="the n-gram model decides alone (paraphrases are understood less well)")
        except RoutingModelError as exc:
            knowledge.use_classifier(Classifier.empty("model unreadable"))
            log.error("routing.model_unusable", reason=str(exc), fallback="term matcher alone")
        # The knowledge base and the routing model are a few hundred thousand objects
        # that live as long as the process: out of the cyclic collector's way, a full
        # collection no longer stalls the event loop (and the calls' audio pacing)
        # for tens of milliseconds.
        gc.freeze()
        log.info("voice.startup_objects_frozen", objects=gc.get_freeze_count())
        try:
            pool = await RecognizerPool.start(settings.asr)
        except ModelError as exc:
            log.error("voice.disabled", reason=f"speech model unusable: {exc}; the menu is keypad only")
            return None
        server = AudioSocketServer(settings.asr, pool)
        try:
            await server.start()
        except OSError as exc:
            log.error("voice.disabled", reason=f"AudioSocket server cannot listen: {exc}")
            await pool.close()
            return None
        prompts = PromptLibrary(settings.voice)

        async def unplaced(text: str, confidence: float | None, linkedid: str,
                           decision: Mapping[str, Any]) -> object:
            if db is None:
                return None
            return await record_unplaced(db, text, transcript_confidence=confidence, linkedid=linkedid,
                                         decision=decision)

        service = cls(VoiceMenu(settings, server, knowledge, prompts, unplaced), server, pool)
        service._warm_up = asyncio.create_task(prompts.warm_up())
        log.info("voice.ready", model=settings.asr.model_path, audiosocket_port=server.port,
                 knowledge_items=len(knowledge.items))
        return service

    async def close(self) -> None:
        if self._warm_up is not None:
            self._warm_up.cancel()
        self.menu.close()
        await self.server.close()
        await self.pool.close()

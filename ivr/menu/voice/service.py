"""Starting the spoken menu in ``hotline serve``: the speech model and its
recogniser pool, the AudioSocket server, the knowledge base, the prompts.

A missing or broken model is a clear error at start-up, and the service runs
with the keypad menu only (it does not refuse to start: callers must still get
through)."""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

import asyncpg

from asr.audiosocket import AudioSocketServer
from asr.engine import ModelError, RecognizerPool
from routing import Knowledge
from knowledge.store import record_unplaced
from hotline.logs import get_logger
from hotline.settings import Settings
from ivr.menu.prompts import PromptLibrary
from ivr.menu.voice import VoiceMenu

log = get_logger(__name__)


class VoiceService:
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
        await self.server.close()
        await self.pool.close()

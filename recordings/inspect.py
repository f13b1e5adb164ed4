"""What a finished MixMonitor file holds: size, duration, checksum, or what is wrong.

Blocking file I/O: call it from a worker thread (asyncio.to_thread).
"""

from __future__ import annotations

import hashlib
import wave
from dataclasses import dataclass
from pathlib import Path

WAV_HEADER_BYTES = 44  # a MixMonitor WAV with no audio is exactly its header


@dataclass(frozen=True)
class RecordingFile:
    status: str  # ok | empty | missing | unreadable
    bytes: int | None = None
    duration_seconds: float | None = None
    sha256: str | None = None
    problem: str | None = None


def inspect_recording(path: Path) -> RecordingFile:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return RecordingFile("missing", problem=f"no file at {path}")
    except OSError as exc:
        return RecordingFile("unreadable", problem=f"cannot stat {path}: {exc.strerror}")
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        return RecordingFile("unreadable", bytes=size, problem=f"cannot read {path}: {exc.strerror}")
    sha = digest.hexdigest()
    if size <= WAV_HEADER_BYTES:
        return RecordingFile("empty", bytes=size, duration_seconds=0.0, sha256=sha,
                             problem=f"{size} bytes: no audio was recorded")
    duration = None
    problem = None
    if path.suffix.lower() == ".wav":
        try:
            with wave.open(str(path), "rb") as wav:
                duration = wav.getnframes() / float(wav.getframerate())
        except (wave.Error, EOFError) as exc:
            return RecordingFile("unreadable", bytes=size, sha256=sha, problem=f"bad WAV: {exc}")
    else:
        problem = "duration unknown for this format"
    return RecordingFile("ok", bytes=size, duration_seconds=duration, sha256=sha, problem=problem)

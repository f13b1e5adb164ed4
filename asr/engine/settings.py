"""Settings of the speech engine and the AudioSocket server (the ``[asr]`` table).

Kept apart from :mod:`hotline.settings` so the engine can be used and tested on
its own; :meth:`AsrSettings.from_mapping` takes the raw ``[asr]`` table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from hotline.settings import SettingsError


@dataclass(frozen=True)
class AsrSettings:
    # Folder of an unpacked Vosk model. Empty: speech recognition is off and the
    # menu uses the keypad only. Never downloaded at run time.
    model_path: str = ""
    # Optional sha256sum file (paths relative to the model folder) checked at start-up;
    # a bare file name is looked up among the checksums shipped in asr/engine/checksums.
    model_checksums: str = ""
    sample_rate: int = 8000            # AudioSocket kind 0x10 is 8 kHz signed linear
    workers: int = 0                   # decoding threads (vosk releases the GIL); 0: one per core
    max_streams: int = 40              # concurrent recognisers; more calls get keys only
    spare_recognizers: int = 8         # idle recognisers kept warm for the next calls
    partial_interval: float = 0.2      # seconds of audio between partial results
    words: bool = True                 # word timings and confidences in final results
    # Vosk/Kaldi endpointing, written into the model's conf/model.conf overlay.
    # None keeps the model's own value.
    no_speech_timeout: float | None = 5.0         # rule1: only silence for this long -> empty final
    endpoint_silence: float | None = 0.5          # rule2: trailing silence after a confident utterance
    endpoint_silence_unsure: float | None = 1.0   # rule3: ... after a less confident one
    endpoint_silence_max: float | None = 2.0      # rule4: ... after anything
    max_utterance: float | None = 20.0            # rule5: an utterance never runs longer
    # Decoder search width (speed against accuracy); None keeps the model's value.
    beam: float | None = None
    max_active: int | None = None
    # Decoding this many seconds behind real time: the stream is failed as
    # overloaded, so the caller goes to the keypad instead of waiting.
    max_lag: float = 3.0
    # AudioSocket server (dialplan: AudioSocket(${AS_UUID},host:port)).
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = 9092
    first_frame_timeout: float = 5.0   # a connection must send its UUID frame within this
    claim_timeout: float = 30.0        # a call nobody registered for is closed after this
    max_frame_payload: int = 4096      # larger length fields are treated as garbage

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, base: Path | None = None) -> "AsrSettings":
        """Build from the raw ``[asr]`` table; unknown keys and wrong types raise
        :class:`SettingsError` naming the key. Relative paths are taken from
        ``base`` (the settings file's folder)."""
        data = dict(data or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SettingsError(f"[asr] has unknown setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            values[name] = _coerce(name, value, getattr(cls, name))
        if base is not None and values.get("model_path") and not Path(values["model_path"]).is_absolute():
            values["model_path"] = str(base / values["model_path"])
        if values.get("model_checksums"):
            values["model_checksums"] = str(checksum_file(values["model_checksums"], base))
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`SettingsError` when a value cannot work."""
        if self.sample_rate not in (8000, 16000):
            raise SettingsError("[asr] sample_rate must be 8000 or 16000")
        if self.workers < 0:
            raise SettingsError("[asr] workers must be 0 (one per core) or more")
        if self.max_streams < 1:
            raise SettingsError("[asr] max_streams must be at least 1")
        if self.spare_recognizers < 0:
            raise SettingsError("[asr] spare_recognizers must be 0 or more")
        if not 0.02 <= self.partial_interval <= 5:
            raise SettingsError("[asr] partial_interval must be between 0.02 and 5 seconds")
        if not 0 < self.audiosocket_port < 65536:
            raise SettingsError("[asr] audiosocket_port must be a TCP port")
        for name in ("no_speech_timeout", "endpoint_silence", "endpoint_silence_unsure",
                     "endpoint_silence_max", "max_utterance", "beam"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SettingsError(f"[asr] {name} must be positive")
        if self.max_frame_payload < 320:
            raise SettingsError("[asr] max_frame_payload must be at least 320 bytes")

    @property
    def enabled(self) -> bool:
        """True when a model is configured."""
        return bool(self.model_path)

    @property
    def worker_count(self) -> int:
        """Decoding threads to start: ``workers``, or one per CPU core when 0."""
        return self.workers or max(1, os.cpu_count() or 1)

    @property
    def frame_bytes(self) -> int:
        """Bytes in 20 ms of 16-bit mono audio at the configured rate."""
        return self.sample_rate * 2 // 50




SHIPPED_CHECKSUMS = Path(__file__).resolve().parent / "checksums"


def checksum_file(name: str, base: Path | None = None) -> Path:
    """Where a ``model_checksums`` value points: an absolute path, a file shipped
    in asr/engine/checksums (a bare name), or a path relative to ``base``."""
    path = Path(name)
    if path.is_absolute():
        return path
    shipped = SHIPPED_CHECKSUMS / path.name
    if path.name == name and shipped.exists():
        return shipped
    return (base or Path.cwd()) / path


def _coerce(name: str, value: Any, default: Any) -> Any:
    if value is None:
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SettingsError(f"[asr] {name} must be true or false")
        return value
    if isinstance(default, int) or name in ("max_active",):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"[asr] {name} must be an integer")
        return value
    if isinstance(default, float) or default is None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"[asr] {name} must be a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise SettingsError(f"[asr] {name} must be a string")
        return value
    return value

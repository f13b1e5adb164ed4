"""Endpointing and search settings for a read-only model folder.

Vosk 0.3.45 reads these options only from the model's ``conf/model.conf`` and has
no API to change them. When the configured values differ from the model's, we
build an overlay folder: symbolic links to the model's files, plus our own
``conf/model.conf``. The overlay lives in a temporary folder removed at exit.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from hotline.settings import AsrSettings

# Kaldi's defaults for options a model.conf may leave out.
KALDI_DEFAULTS = {
    "--endpoint.rule1.min-trailing-silence": "5.0",
    "--endpoint.rule5.min-utterance-length": "20.0",
}


def wanted_options(settings: AsrSettings) -> dict[str, str]:
    """The model.conf options the settings ask for (None values are left alone)."""
    pairs = {
        "--endpoint.rule1.min-trailing-silence": settings.no_speech_timeout,
        "--endpoint.rule2.min-trailing-silence": settings.endpoint_silence,
        "--endpoint.rule3.min-trailing-silence": settings.endpoint_silence_unsure,
        "--endpoint.rule4.min-trailing-silence": settings.endpoint_silence_max,
        "--endpoint.rule5.min-utterance-length": settings.max_utterance,
        "--beam": settings.beam,
        "--max-active": settings.max_active,
    }
    return {key: _fmt(value) for key, value in pairs.items() if value is not None}


def read_options(conf: Path) -> dict[str, str]:
    """``--key=value`` lines of a Kaldi config file, in order."""
    options: dict[str, str] = {}
    for line in conf.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("--"):
            key, _, value = line.partition("=")
            options[key] = value
    return options


def changed_options(model_dir: Path, wanted: dict[str, str]) -> dict[str, str]:
    """The subset of ``wanted`` that differs from what the model would use."""
    current = {**KALDI_DEFAULTS, **read_options(model_dir / "conf" / "model.conf")}
    return {k: v for k, v in wanted.items() if k not in current or float(current[k]) != float(v)}


def make_overlay(model_dir: Path, changes: dict[str, str]) -> Path:
    """Create the overlay folder for ``model_dir`` with ``changes`` applied to
    ``conf/model.conf``; return its path."""
    root = Path(tempfile.mkdtemp(prefix="vosk-overlay-"))
    atexit.register(shutil.rmtree, root, True)
    for entry in model_dir.iterdir():
        if entry.name != "conf":
            (root / entry.name).symlink_to(entry.resolve())
    conf = root / "conf"
    conf.mkdir()
    for entry in (model_dir / "conf").iterdir():
        if entry.name != "model.conf":
            (conf / entry.name).symlink_to(entry.resolve())
    options = {**read_options(model_dir / "conf" / "model.conf"), **changes}
    (conf / "model.conf").write_text("".join(f"{k}={v}\n" for k, v in options.items()), encoding="utf-8")
    return root


def _fmt(value: float | int) -> str:
    return str(int(value)) if isinstance(value, int) else f"{float(value):g}"

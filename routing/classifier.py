"""The trained intent classifier at run time, read from
``config/routing/model.json.gz`` (written by ``hotline routing train``;
``HOTLINE_ROUTING_MODEL`` names another file). Two models and a third that
combines them:

* n-grams: TF-IDF of character and pinyin n-grams (:mod:`routing.features`) and
  multinomial logistic regression, in pure Python (a few hundred dictionary
  look-ups): exact words and the recogniser's homophones;
* embeddings: logistic regression on the utterance's sentence embedding
  (:mod:`routing.embedding`): paraphrase, situations described in other words;
* the pool: ``p ~ p_ngram^a * p_embedding^b``, the two exponents fitted on
  utterances neither model was fitted on, so its probabilities are calibrated
  (an 0.9 is right about nine times in ten on unseen wording).

Without the embedding engine the n-gram model decides alone (said once in the
log by the voice menu at start; the decision's ``model`` record says it too)."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from routing.embedding import EmbeddingUnavailable, Embedder, shared_embedder
from routing.features import features

REPOSITORY_MODEL = Path(__file__).resolve().parent.parent / "config" / "routing" / "model.json.gz"
MODEL_PATH = Path(os.environ.get("HOTLINE_ROUTING_MODEL") or REPOSITORY_MODEL)
MODEL_VERSION = "ngram-lr+e5small-lr+pool-2"


class ModelError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelInfo:
    version: str
    corpus_hash: str        # sha256 of the training utterances (routing.corpus.corpus_hash)
    model_sha256: str       # of the file
    classes: tuple[str, ...]
    features: int
    corpus_size: int

    embedding: str = ""     # the embedding engine the model was trained with ("" for none)

    def short(self) -> dict[str, str]:
        """What every ``voice.heard`` row carries."""
        return {"version": self.version, "corpus": self.corpus_hash[:12], "model": self.model_sha256[:12]}


def _softmax(scores: list[float]) -> list[float]:
    if not scores:
        return []
    top = max(scores)
    exp = [math.exp(s - top) for s in scores]
    total = sum(exp)
    return [e / total for e in exp]


FLOOR = 1e-6   # log-probabilities into the pool are taken of at least this


class Classifier:
    def __init__(self, data: bytes, embedder: Embedder | None = None):
        model = json.loads(gzip.decompress(data))
        self.classes: tuple[str, ...] = tuple(model["classes"])
        self.intercept: list[float] = model["intercept"]
        import numpy as np

        # feature -> row of (idf, weight per class): one float64 matrix, not a list of
        # floats per feature (84,000 features: 11 MB instead of ~70 MB of Python objects).
        table = model["features"]
        self._row: dict[str, int] = {f: i for i, f in enumerate(table)}
        self._idf = np.fromiter((v[0] for v in table.values()), dtype=np.float64, count=len(table))
        self._coef = np.array([v[1] for v in table.values()], dtype=np.float64).reshape(len(table), len(self.classes))
        self._intercept = np.asarray(self.intercept, dtype=np.float64)
        embedding = model.get("embedding")
        pool = model.get("pool")
        self._embedding = None
        if embedding and pool:
            import numpy as np
            self._embedding = (np.asarray(embedding["coef"], dtype=np.float32),
                               np.asarray(embedding["intercept"], dtype=np.float32))
            self._pool = (float(pool["ngram"]), float(pool["embedding"]))
        self._embedder = embedder or shared_embedder()
        self.degraded: str | None = None    # why the embeddings are not used, once found out
        # The last utterance's probabilities: a decision may ask twice (the complaint
        # check before the operator words, then the routing), and the embedding is
        # the expensive part. One tuple, replaced whole: safe across router threads.
        self._last: tuple[str, dict[str, float]] | None = None
        self.info = ModelInfo(version=model["version"], corpus_hash=model["corpus_hash"],
                              model_sha256=hashlib.sha256(data).hexdigest(), classes=self.classes,
                              features=len(self._row), corpus_size=model.get("corpus_size", 0),
                              embedding=(embedding or {}).get("engine", ""))

    @classmethod
    def empty(cls, why: str) -> "Classifier":
        """A model that knows no features: the router decides on terms alone."""
        data = gzip.compress(json.dumps({"version": f"none ({why})", "corpus_hash": "", "classes": [],
                                         "intercept": [], "features": {}}).encode(), mtime=0)
        return cls(data)

    @classmethod
    def load(cls, path: str | Path = MODEL_PATH) -> "Classifier":
        try:
            return cls(Path(path).read_bytes())
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"intent model {path} cannot be read: {exc} (run `hotline routing train`)") from exc

    def known_share(self, text: str) -> float:
        """Share of the utterance's features the model was trained on (0: text in
        another script or language, about which the model knows nothing)."""
        every = features(text)
        return sum(1 for f in every if f in self._row) / len(every) if every else 0.0

    def ngram_probabilities(self, text: str) -> list[float]:
        """The n-gram model's probability of every class, in ``classes`` order."""
        import numpy as np

        counts = Counter(self._row[f] for f in features(text) if f in self._row)
        if not counts:
            return _softmax([float(b) for b in self._intercept])
        rows = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
        weights = tf * self._idf[rows]
        weights /= np.sqrt(weights @ weights) or 1.0
        return _softmax([float(s) for s in self._intercept + weights @ self._coef[rows]])

    def embedding_probabilities(self, text: str) -> list[float] | None:
        """The embedding model's probabilities, or None (no embedding model in
        the file, or no engine: :attr:`degraded` says why)."""
        if self._embedding is None or self.degraded is not None:
            return None
        try:
            vector = self._embedder.embed([text])[0]
        except EmbeddingUnavailable as exc:
            self.degraded = str(exc)
            return None
        coef, intercept = self._embedding
        return _softmax([float(s) for s in vector @ coef + intercept])

    def ready(self) -> str | None:
        """Load the embedding engine now (start-up, not the first caller);
        returns why the n-gram model decides alone, or None."""
        if self._embedding is None:
            return "the model file has no embedding model"
        self.embedding_probabilities("你好")
        return self.degraded

    def probabilities(self, text: str) -> dict[str, float]:
        """Probability of every class (departments and ``operator``): the
        pool's when the embeddings are there, else the n-gram model's."""
        last = self._last
        if last is not None and last[0] == text:
            return dict(last[1])
        ngram = self.ngram_probabilities(text)
        embedded = self.embedding_probabilities(text) if self.classes else None
        if embedded is None:
            probs = dict(zip(self.classes, ngram))
        else:
            a, b = self._pool
            scores = [a * math.log(max(p, FLOOR)) + b * math.log(max(q, FLOOR)) for p, q in zip(ngram, embedded)]
            probs = dict(zip(self.classes, _softmax(scores)))
        self._last = (text, probs)
        return dict(probs)


@lru_cache(maxsize=2)
def _cached(path: str) -> Classifier:
    return Classifier.load(path)


def default_classifier() -> Classifier:
    """The repository's model, loaded once per process."""
    return _cached(str(MODEL_PATH))

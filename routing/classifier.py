"""The trained intent classifier at run time: TF-IDF of character and pinyin
n-grams (:mod:`routing.features`) and multinomial logistic regression, read from
``config/routing/model.json.gz`` (written by ``hotline routing train``) and
evaluated in pure Python (a few hundred dictionary look-ups per utterance)."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from routing.features import features

MODEL_PATH = Path(__file__).resolve().parent.parent / "config" / "routing" / "model.json.gz"
MODEL_VERSION = "tfidf-char-pinyin-lr-1"


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

    def short(self) -> dict[str, str]:
        """What every ``voice.heard`` row carries."""
        return {"version": self.version, "corpus": self.corpus_hash[:12], "model": self.model_sha256[:12]}


class Classifier:
    def __init__(self, data: bytes):
        model = json.loads(gzip.decompress(data))
        self.classes: tuple[str, ...] = tuple(model["classes"])
        self.intercept: list[float] = model["intercept"]
        self.table: dict[str, tuple[float, list[float]]] = {f: (v[0], v[1]) for f, v in model["features"].items()}
        self.info = ModelInfo(version=model["version"], corpus_hash=model["corpus_hash"],
                              model_sha256=hashlib.sha256(data).hexdigest(), classes=self.classes,
                              features=len(self.table), corpus_size=model.get("corpus_size", 0))

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
        return sum(1 for f in every if f in self.table) / len(every) if every else 0.0

    def probabilities(self, text: str) -> dict[str, float]:
        """Probability of every class (departments and ``operator``)."""
        counts = Counter(f for f in features(text) if f in self.table)
        weights = {f: (1.0 + math.log(n)) * self.table[f][0] for f, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        scores = list(self.intercept)
        for f, w in weights.items():
            coef = self.table[f][1]
            x = w / norm
            for k in range(len(scores)):
                scores[k] += x * coef[k]
        top = max(scores)
        exp = [math.exp(s - top) for s in scores]
        total = sum(exp)
        return {c: e / total for c, e in zip(self.classes, exp)}


@lru_cache(maxsize=2)
def _cached(path: str) -> Classifier:
    return Classifier.load(path)


def default_classifier() -> Classifier:
    """The repository's model, loaded once per process."""
    return _cached(str(MODEL_PATH))

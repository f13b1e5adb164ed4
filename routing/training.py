"""``hotline routing train``: fit the intent classifier on the generated corpus
(:mod:`routing.corpus`) and write it into the repository
(``config/routing/model.json.gz``). scikit-learn is needed here only (the
``train`` extra); the running service reads the file with
:mod:`routing.classifier`.

How (see :mod:`routing.classifier` for the three models):

1. the corpus is split by *group* (what an utterance was made from: a phrase, a
   situation, a knowledge item; a noisy variant goes with its source) into a
   fitting part and a calibration part (every ``CALIBRATION_SHARE``-th group by
   hash), so the calibration utterances are new wording to the base models;
2. the n-gram and the embedding models are fitted on the fitting part, and
   predict the calibration part;
3. the pool is fitted on those predictions: it learns how far to trust each
   model on unseen wording, which makes its probabilities calibrated;
4. both base models are fitted again on the whole corpus (the pool's weights
   stay).

Embeddings of the corpus are cached (``HOTLINE_CACHE_DIR``, default
``~/.cache/hotline``), keyed by engine and text: a rebuild after a small corpus
edit embeds only the new lines.

Deterministic: the corpus is seeded and ordered, TF-IDF is exact, the
embeddings are rounded, lbfgs logistic regression has no random state; the
weights are rounded so the file's bytes (and hash) are the same on every run
(gzip's time stamp is fixed to 0)."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

from routing.classifier import MODEL_PATH, MODEL_VERSION
from routing.corpus import Utterance, corpus_hash, generate
from routing.embedding import Embedder, engine_version
from routing.features import content, features

C = 10.0            # n-gram model's inverse regularisation: cross-validated on the corpus only
EMBEDDING_C = 20.0  # the embedding model's
MIN_DF = 2          # a feature must occur in two training utterances
DIGITS = 4          # weights rounded to this many decimals (byte-stable artefact)
EMBEDDING_DIGITS = 4
CALIBRATION_SHARE = 5   # one group in five calibrates the pool
SENTENCE_MIN = 8        # characters: a group this long is a written sentence, not a phrase
FLOOR = 1e-6


def _calibration_group(group: str) -> bool:
    return int(hashlib.sha256(group.encode("utf-8")).hexdigest()[:8], 16) % CALIBRATION_SHARE == 0


def _written_sentence(group: str) -> bool:
    """A group that is a whole hand-written sentence (not a phrase put into a
    frame, not a knowledge item)."""
    return len(group) >= SENTENCE_MIN and any("\u4e00" <= ch <= "\u9fff" for ch in group)


def _ngram_fit(texts: Sequence[str], labels: Sequence[str]):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer=features, sublinear_tf=True, min_df=MIN_DF)
    matrix = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=C, max_iter=3000)
    model.fit(matrix, labels)
    return vectorizer, model


def _embedding_fit(vectors, labels: Sequence[str]):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=EMBEDDING_C, max_iter=5000)
    model.fit(vectors, labels)
    return model


def _pool_weights(log_ngram, log_embedding, truth: Sequence[int]) -> tuple[float, float]:
    """The two exponents of a log-linear pool, ``p ~ p_ngram^a * p_embedding^b``,
    that minimise the log-loss on the calibration utterances: a grid (exact,
    deterministic). Two numbers, not a matrix: a pool cannot learn accidents of
    the calibration sample (class B's probability raising class A's), only how
    far to trust each model and how sharp the result should be."""
    import numpy as np

    rows = np.arange(len(truth))
    truth = np.asarray(truth)
    best = (float("inf"), 0.0, 0.0)
    grid = [round(0.05 * k, 2) for k in range(0, 61)]
    for a in grid:
        for b in grid:
            if a == 0 and b == 0:
                continue
            scores = a * log_ngram + b * log_embedding
            scores -= scores.max(axis=1, keepdims=True)
            loss = float(np.mean(np.log(np.exp(scores).sum(axis=1)) - scores[rows, truth]))
            if loss < best[0] - 1e-12:
                best = (loss, a, b)
    return best[1], best[2]


def _log(p):
    import numpy as np
    return np.log(np.maximum(p, FLOOR))


class EmbeddingCache:
    """Embeddings of training texts on disk, keyed by engine and text."""

    def __init__(self, embedder: Embedder, directory: Path | None = None):
        import os
        self.embedder = embedder
        root = directory or Path(os.environ.get("HOTLINE_CACHE_DIR") or Path.home() / ".cache" / "hotline")
        self.path = root / f"embeddings-{engine_version()}.npz"
        self.computed = 0

    def vectors(self, texts: Sequence[str]):
        import numpy as np

        known: dict[str, Any] = {}
        if self.path.exists():
            try:
                with np.load(self.path, allow_pickle=False) as stored:
                    known = dict(zip(stored["texts"].tolist(), stored["vectors"]))
            except (OSError, ValueError, KeyError):
                known = {}
        missing = sorted({t for t in texts if t not in known})
        for start in range(0, len(missing), 256):
            batch = missing[start:start + 256]
            for text, vector in zip(batch, self.embedder.embed(batch)):
                known[text] = np.round(vector, EMBEDDING_DIGITS).astype(np.float32)
        self.computed = len(missing)
        if missing:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                keys = sorted(known)
                tmp = self.path.with_suffix(".tmp.npz")
                np.savez(tmp, texts=np.array(keys), vectors=np.stack([known[k] for k in keys]))
                tmp.replace(self.path)
            except OSError:
                pass   # a read-only home: the next run embeds again
        return np.stack([known[t] for t in texts])


def fit(corpus: Sequence[Utterance], vectors=None) -> dict[str, Any]:
    """The three models (``vectors``: the corpus's embeddings, row by row; None
    for an n-gram model alone). BLAS runs on one thread: a multi-threaded sum
    can round differently from run to run, and the file must not change."""
    # scikit-learn's own OpenMP runtime (its loss and gradient run in threads) is
    # loaded with its modules: import them first, so the limit reaches it too.
    # Otherwise the thread count (OMP_NUM_THREADS, inherited or set by the
    # embedding engine) changes the rounding and the file.
    import sklearn.feature_extraction.text  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _fit(corpus, vectors)


def _fit(corpus: Sequence[Utterance], vectors=None) -> dict[str, Any]:
    import numpy as np
    texts = [u.text for u in corpus]
    labels = [u.label for u in corpus]
    vectorizer, model = _ngram_fit(texts, labels)
    classes = [str(c) for c in model.classes_]
    coef = model.coef_.T  # features x classes
    table = {}
    for feature, column in sorted(vectorizer.vocabulary_.items()):
        weights = [round(float(w), DIGITS) for w in coef[column]]
        table[feature] = [round(float(vectorizer.idf_[column]), DIGITS), weights]
    out: dict[str, Any] = {
        "version": MODEL_VERSION,
        "corpus_hash": corpus_hash(corpus),
        "corpus_size": len(corpus),
        "classes": classes,
        "intercept": [round(float(b), DIGITS) for b in model.intercept_],
        "features": table,
    }
    if vectors is None:
        return out

    held = np.array([_calibration_group(u.group or u.text) for u in corpus])
    fit_idx = np.flatnonzero(~held)
    # The pool is calibrated on what is most like a real caller: held-apart
    # hand-written sentences (situations, dialect, complaints, requests for a
    # person, out-of-scope lines) and their recogniser-style variants, not on
    # frames around a phrase, which the models find easy and would make the pool
    # over-confident on wording nobody wrote into the corpus.
    cal_idx = np.flatnonzero(held & np.array([_written_sentence(u.group) for u in corpus]))
    part_vec, part_ngram = _ngram_fit([texts[i] for i in fit_idx], [labels[i] for i in fit_idx])
    part_emb = _embedding_fit(vectors[fit_idx], [labels[i] for i in fit_idx])
    assert list(part_ngram.classes_) == classes == list(part_emb.classes_), "a class missing from the fitting part"
    cal_ngram = part_ngram.predict_proba(part_vec.transform([texts[i] for i in cal_idx]))
    cal_emb = part_emb.predict_proba(vectors[cal_idx])
    weights = _pool_weights(_log(cal_ngram), _log(cal_emb), [classes.index(labels[i]) for i in cal_idx])
    embedding = _embedding_fit(vectors, labels)
    out["embedding"] = {
        "engine": engine_version(),
        "coef": [[round(float(w), DIGITS) for w in row] for row in embedding.coef_.T],   # 384 x classes
        "intercept": [round(float(b), DIGITS) for b in embedding.intercept_],
    }
    out["pool"] = {
        "combine": "softmax(ngram * log p(ngram) + embedding * log p(embedding))",
        "ngram": weights[0], "embedding": weights[1],
        "calibration_utterances": int(len(cal_idx)),
    }
    return out


def serialise(model: dict[str, Any]) -> bytes:
    raw = json.dumps(model, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=9, mtime=0)



def train(items, departments: Sequence[str], path: Path = MODEL_PATH, *, write: bool = True,
          embedder: Embedder | None = None) -> dict[str, Any]:
    """Generate the corpus, embed it, fit, write ``path``; returns what was done."""
    started = time.perf_counter()
    corpus = generate(items, departments)
    cache = EmbeddingCache(embedder or Embedder(threads=_training_threads()))
    # The router embeds the normalised, filler-free transcript: so does training.
    vectors = cache.vectors([content(u.text) for u in corpus])
    model = fit(corpus, vectors)
    data = serialise(model)
    unchanged = path.exists() and path.read_bytes() == data
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {"path": str(path), "utterances": len(corpus), "corpus_hash": model["corpus_hash"],
            "features": len(model["features"]), "bytes": len(data),
            "model_sha256": hashlib.sha256(data).hexdigest(),
            "unchanged": unchanged, "embedded": cache.computed, "embedding_cache": str(cache.path),
            "calibration_utterances": model["pool"]["calibration_utterances"],
            "seconds": round(time.perf_counter() - started, 2)}


def _training_threads() -> int:
    import os
    return max(1, len(os.sched_getaffinity(0)))


def run_train(settings, *, check: bool = False) -> int:
    """``hotline routing train [--check]``."""
    from knowledge.files import load_items

    items = load_items(None, settings=settings)
    departments = [d.code for d in settings.departments]
    result = train(items, departments, write=not check)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if check and not result["unchanged"] else 0

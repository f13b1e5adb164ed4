"""``hotline routing train``: fit the intent classifier on the generated corpus
(:mod:`routing.corpus`) and write it into the repository
(``config/routing/model.json.gz``). scikit-learn is needed here only (the
``train`` extra); the running service reads the file with
:mod:`routing.classifier`, in pure Python.

Deterministic: the corpus is seeded and ordered, TF-IDF is exact and lbfgs
logistic regression has no random state; the weights are rounded so the file's
bytes (and hash) are the same on every run (gzip's time stamp is fixed to 0)."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

from routing.classifier import MODEL_PATH, MODEL_VERSION
from routing.corpus import Utterance, corpus_hash, generate
from routing.features import features

C = 10.0            # inverse regularisation: chosen by cross-validation on the corpus only
MIN_DF = 2          # a feature must occur in two training utterances
DIGITS = 4          # weights rounded to this many decimals (byte-stable artefact)


def fit(corpus: Sequence[Utterance]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer=features, sublinear_tf=True, min_df=MIN_DF)
    matrix = vectorizer.fit_transform([u.text for u in corpus])
    model = LogisticRegression(C=C, max_iter=3000)
    model.fit(matrix, [u.label for u in corpus])
    coef = model.coef_.T  # features x classes
    table = {}
    for feature, column in sorted(vectorizer.vocabulary_.items()):
        weights = [round(float(w), DIGITS) for w in coef[column]]
        table[feature] = [round(float(vectorizer.idf_[column]), DIGITS), weights]
    return {
        "version": MODEL_VERSION,
        "corpus_hash": corpus_hash(corpus),
        "corpus_size": len(corpus),
        "classes": [str(c) for c in model.classes_],
        "intercept": [round(float(b), DIGITS) for b in model.intercept_],
        "features": table,
    }


def serialise(model: dict[str, Any]) -> bytes:
    raw = json.dumps(model, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=9, mtime=0)



def train(items, departments: Sequence[str], path: Path = MODEL_PATH, *, write: bool = True) -> dict[str, Any]:
    """Generate the corpus, fit, write ``path``; returns what was done."""
    started = time.perf_counter()
    corpus = generate(items, departments)
    model = fit(corpus)
    data = serialise(model)
    unchanged = path.exists() and path.read_bytes() == data
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {"path": str(path), "utterances": len(corpus), "corpus_hash": model["corpus_hash"],
            "features": len(model["features"]), "bytes": len(data),
            "model_sha256": hashlib.sha256(data).hexdigest(),
            "unchanged": unchanged, "seconds": round(time.perf_counter() - started, 2)}


def run_train(settings, *, check: bool = False) -> int:
    """``hotline routing train [--check]``."""
    from knowledge.files import load_items

    items = load_items(None, settings=settings)
    departments = [d.code for d in settings.departments]
    result = train(items, departments, write=not check)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if check and not result["unchanged"] else 0

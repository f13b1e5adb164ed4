"""The classifier's training utterances, generated from the hand-written sources
in ``config/routing/corpus/`` (see its README) and the knowledge base (every
item's question and keywords). Deterministic: the same sources give the same
utterances in the same order, and :func:`corpus_hash` names them.

Styles: plain, colloquial, filler, dialect, short (frames x phrases); indirect
(situations written by hand); complaint (complaints about any service are
labelled ``complaint``); who_does (who the caller is + what they ask: the
request decides); two_depts (a circumstance of one department, ``[context]``, said
before, after or around a request of another: labelled with the request's; and the
hand-written whole sentences of ``[mixed]``, which do the same); district (places x frames); person (requests for a person:
label ``operator``); none (out of scope: chit-chat, fragments, talk to someone
else in the room, wrong numbers, noise: label ``none``, so the menu re-prompts);
asr_noisy (recogniser-style variants of all of these,
:mod:`routing.noise`); knowledge (questions, alternative questions and keywords of
the knowledge base).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from routing.noise import Confusions
from knowledge.model import KnowledgeItem

OPERATOR = "operator"   # the label of a request for a person (not a department)
NONE = "none"           # the label of an out-of-scope utterance (no department, no person)
SOURCES = Path(__file__).resolve().parent.parent / "config" / "routing" / "corpus"
SEED = "hotline-routing-corpus-1"

# Frames x phrases sampled per department and style (all when fewer).
PER_STYLE = {"plain": 70, "colloquial": 45, "filler": 45, "dialect": 35, "short": 40}
COMPLAINT_ABOUT = 12     # per department: complaints about its services
WHO_DOES = 10            # per department
TWO_DEPTS = 40          # per department: its request beside another department's circumstance
NOISY_SHARE = 0.35       # share of utterances that also get a recogniser-style variant


@dataclass(frozen=True)
class Utterance:
    text: str
    label: str          # a department code or OPERATOR
    style: str
    # What it was made from (a phrase, a situation, a knowledge item; a noisy
    # variant keeps its source's group): training holds whole groups apart, so
    # the calibration data are not near-copies of what the models were fitted on.
    # Not part of the corpus hash.
    group: str = ""


def read_sections(path: Path) -> dict[str, list[str]]:
    """``[section]`` headers and one entry per line; ``#`` comments."""
    sections: dict[str, list[str]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        if current is None:
            raise ValueError(f"{path}: {line!r} is outside a [section]")
        current.append(line)
    return sections


def _sample(rng: random.Random, pool: Sequence[str], n: int) -> list[str]:
    return list(pool) if len(pool) <= n else rng.sample(list(pool), n)


def generate(items: Iterable[KnowledgeItem], departments: Sequence[str],
             sources: Path = SOURCES) -> list[Utterance]:
    items = list(items)
    templates = read_sections(sources / "templates.txt")
    places = read_sections(sources / "places.txt")
    operator = read_sections(sources / "operator.txt")
    out_of_scope = read_sections(sources / "none.txt")
    per_dept = {d: read_sections(sources / f"{d}.txt") for d in departments}
    rng = random.Random(SEED)
    out: list[Utterance] = []

    phrases: dict[str, list[str]] = {}
    for dept in departments:
        own = per_dept[dept].get("phrases", [])
        kb = [k for i in items if i.department == dept for k in i.keywords]
        phrases[dept] = list(dict.fromkeys(own + kb))

    for dept in departments:
        for style, n in PER_STYLE.items():
            frames = templates[style]
            combos = [(f.replace("{x}", p), p) for f in frames for p in phrases[dept]]
            out.extend(Utterance(t, dept, style, p) for t, p in _sample(rng, combos, n))
        for sentence in per_dept[dept].get("situations", []):
            out.append(Utterance(sentence, dept, "indirect", sentence))
            out.append(Utterance(rng.choice(templates["filler"]).replace("{x}", sentence), dept, "indirect",
                                 sentence))
        for sentence in per_dept[dept].get("dialect", []):
            out.append(Utterance(sentence, dept, "dialect", sentence))
        for sentence in per_dept[dept].get("mixed", []):
            out.append(Utterance(sentence, dept, "two_depts", sentence))
        for item in items:
            if item.department == dept:
                out.extend(Utterance(q, dept, "knowledge", item.id) for q in (item.question, *item.alternatives))
        if dept != "complaint":
            combos = [(f.replace("{x}", p), p) for f in templates["complaint_about"] for p in phrases[dept]]
            out.extend(Utterance(t, "complaint", "complaint", p)
                       for t, p in _sample(rng, combos, COMPLAINT_ABOUT))
        combos = [(f.replace("{x}", p), p) for f in templates["who_does"] for p in phrases[dept]]
        out.extend(Utterance(t, dept, "who_does", p) for t, p in _sample(rng, combos, WHO_DOES))

    if "district" in departments:
        combos = [(f.replace("{p}", p), p) for f in places["templates"] for p in places["places"]]
        out.extend(Utterance(t, "district", "district", p) for t, p in _sample(rng, combos, 160))
    for sentence in operator["sentences"]:
        out.append(Utterance(sentence, OPERATOR, "person", sentence))
        out.append(Utterance(rng.choice(templates["filler"]).replace("{x}", sentence), OPERATOR, "person",
                             sentence))

    for sentence in out_of_scope["sentences"]:
        out.append(Utterance(sentence, NONE, "none", sentence))
        out.append(Utterance(rng.choice(templates["filler"]).replace("{x}", sentence), NONE, "none", sentence))

    out.extend(_two_departments(per_dept, phrases, templates, random.Random(SEED + "-two-departments")))

    inventory = "".join(u.text for u in out) + "".join(i.question + i.answer for i in items)
    confusions = Confusions(inventory)
    noisy = [Utterance(confusions.noisy(u.text, rng), u.label, "asr_noisy", u.group)
             for u in out if rng.random() < NOISY_SHARE]
    out.extend(noisy)

    seen: set[tuple[str, str]] = set()
    unique = []
    for u in out:
        if (u.text, u.label) not in seen:
            seen.add((u.text, u.label))
            unique.append(u)
    return unique


def _two_departments(per_dept: dict[str, dict[str, list[str]]], phrases: dict[str, list[str]],
                     templates: dict[str, list[str]], rng: random.Random) -> list[Utterance]:
    """A request of one department beside another's circumstance ("营业执照已经办下来了，
    员工社保怎么交"): labelled with the request's department, in every order (the
    frames of ``[two_depts]``: ``{c}`` a circumstance, ``{r}`` the request, ``{c2}`` a
    second circumstance). Own random stream: adding it moves no other utterance."""
    contexts = {d: s.get("context", []) for d, s in per_dept.items() if s.get("context")}
    requests = [f for style in ("plain", "colloquial") for f in templates[style]]
    out: list[Utterance] = []
    for dept in sorted(contexts):
        others = [d for d in sorted(contexts) if d != dept]
        if not others or not phrases[dept]:
            continue
        for _ in range(TWO_DEPTS):
            phrase = rng.choice(phrases[dept])
            request = rng.choice(requests).replace("{x}", phrase)
            first, second = rng.sample(others, 2) if len(others) > 1 else (others[0], others[0])
            text = (rng.choice(templates["two_depts"]).replace("{c2}", rng.choice(contexts[second]))
                    .replace("{c}", rng.choice(contexts[first])).replace("{r}", request))
            out.append(Utterance(text, dept, "two_depts", phrase))
    return out


def corpus_hash(utterances: Iterable[Utterance]) -> str:
    """sha256 of the utterances and labels, in order: the training data's name."""
    digest = hashlib.sha256()
    for u in utterances:
        digest.update(f"{u.label}\t{u.text}\n".encode("utf-8"))
    return digest.hexdigest()

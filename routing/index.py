"""The router's view of the knowledge base: every term (item keywords and the
parts of the department names in hotline.toml) with its pinyin, who owns it,
and look-up tables. Built once per process; read-only afterwards."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from routing import thresholds as T
from routing.classifier import Classifier, default_classifier
from routing.text import fuzzy_all, normalize, syllables
from routing.vocabulary import GENERIC, OPERATOR_TERMS, TOPIC_CUES
from knowledge.files import knowledge_directory, load_items
from knowledge.model import KnowledgeItem
from hotline.settings import Settings, load_settings

_NAME_SEPARATORS = re.compile(r"[、，,和及与/（）()\s]+")


@dataclass
class Term:
    text: str                       # normalised
    syl: tuple[str, ...]
    fz: tuple[str, ...]
    departments: set[str] = field(default_factory=set)   # empty: topic word only
    items: list[str] = field(default_factory=list)
    topic_only: bool = False

    @property
    def specificity(self) -> float:
        return 1.0 / len(self.departments) if self.departments else 0.0


def topics_in(text: str) -> tuple[str, ...]:
    """Self-service topics whose cues occur in normalised text."""
    return tuple(topic for topic, cues in TOPIC_CUES.items() if any(cue in text for cue in cues))


def is_topic_word(keyword: str) -> bool:
    """A keyword made only of topic cues and generic words ("地址", "办件进度")."""
    rest = keyword
    for word in sorted({c for cues in TOPIC_CUES.values() for c in cues} | set(GENERIC), key=len, reverse=True):
        rest = rest.replace(word, "")
    return len(rest) < 2 and bool(topics_in(keyword))


def _bigrams(text: str) -> frozenset[str]:
    return frozenset(text[i:i + 2] for i in range(len(text) - 1))


class Knowledge:
    """Everything :func:`routing.route` needs, built from knowledge items and the
    settings (departments, their names, the keypad menus, the operator key)."""

    def __init__(self, items: Sequence[KnowledgeItem], settings: Settings,
                 classifier: "Classifier | None" = None):
        self.settings = settings
        self._classifier = classifier
        self.departments = tuple(d.code for d in settings.departments)
        self.department_names = {d.code: d.name for d in settings.departments}
        self.fallback_department = settings.menu.fallback_department
        self.operator_digit = settings.menu.operator_digit
        self.keypads = {name: dict(k.options) for name, k in settings.menu.keypads.items()}
        for code in T.PRIORITY_DEPARTMENTS:
            if code not in self.departments:
                raise ValueError(f"thresholds.PRIORITY_DEPARTMENTS names unknown department {code!r}")
        self.items: dict[str, KnowledgeItem] = {}
        for item in items:
            if item.department not in self.departments:
                raise ValueError(f"item {item.id}: unknown department {item.department!r}")
            self.items[item.id] = item
        self.overview: dict[str, str] = {}
        self.specific: dict[str, list[str]] = {code: [] for code in self.departments}
        for item in self.items.values():
            if item.overview:
                self.overview[item.department] = item.id
            else:
                self.specific[item.department].append(item.id)
        self.item_topics = {i.id: topics_in(normalize(i.question + "".join(i.keywords))) for i in self.items.values()}
        self.item_bigrams = {i.id: [_bigrams(normalize(q)) for q in (i.question, *i.alternatives)]
                             for i in self.items.values()}

        terms: dict[str, Term] = {}

        def term(text: str) -> Term | None:
            norm = normalize(text)
            if len(norm) < 2:
                return None
            if norm not in terms:
                syl = syllables(norm)
                terms[norm] = Term(norm, syl, fuzzy_all(syl))
            return terms[norm]

        operator_words = {normalize(w) for w in OPERATOR_TERMS}
        for dept in settings.departments:
            for part in _NAME_SEPARATORS.split(dept.name):
                if normalize(part) in operator_words:
                    continue
                t = term(part)
                if t is not None:
                    t.departments.add(dept.code)
        for item in self.items.values():
            for keyword in item.keywords:
                t = term(keyword)
                if t is None:
                    continue
                t.items.append(item.id)
                if is_topic_word(t.text):
                    t.topic_only = True
                else:
                    t.departments.add(item.department)
        for t in terms.values():
            if t.topic_only and t.departments:
                t.topic_only = False  # also a department's own word somewhere
        self.terms = list(terms.values())
        # How many of a department's specific items share a keyword.
        self.item_share: dict[tuple[str, str], int] = {}
        for t in self.terms:
            for item_id in t.items:
                dept = self.items[item_id].department
                key = (dept, t.text)
                self.item_share[key] = self.item_share.get(key, 0) + 1

        self.by_first_fuzzy: dict[str, list[Term]] = {}
        self.by_first_char: dict[str, list[Term]] = {}
        self.by_plain_syllable: dict[str, list[Term]] = {}
        for t in self.terms:
            self.by_first_fuzzy.setdefault(t.fz[0], []).append(t)
            self.by_first_char.setdefault(t.text[0], []).append(t)
            if len(t.syl) >= T.APPROX_MIN_SYLLABLES and not t.topic_only:
                for s in set(t.syl):
                    self.by_plain_syllable.setdefault(s, []).append(t)
        self.operator_terms = [(w, syllables(w)) for w in sorted(operator_words, key=len, reverse=True)]

    def __repr__(self) -> str:
        return f"<Knowledge {len(self.items)} items, {len(self.terms)} terms, {len(self.departments)} departments>"

    @classmethod
    def from_files(cls, path: str | Path | None = None, settings: Settings | None = None) -> "Knowledge":
        """Load and validate the knowledge files (``config/knowledge`` or
        ``HOTLINE_KNOWLEDGE_DIR``) against the settings' departments."""
        settings = settings or load_settings()
        return cls(load_items(path, settings=settings), settings)

    @property
    def classifier(self) -> Classifier:
        """The trained intent classifier (the repository's model unless one was given)."""
        if self._classifier is None:
            self._classifier = default_classifier()
        return self._classifier

    def use_classifier(self, classifier: Classifier) -> None:
        self._classifier = classifier

    def question_similarity(self, item_id: str, content: str) -> float:
        """Dice coefficient of character bigrams with the item's closest question
        (standard or alternative): a tie-breaker between items."""
        b = _bigrams(content)
        return max((2 * len(a & b) / (len(a) + len(b)) for a in self.item_bigrams[item_id] if a and b),
                   default=0.0)


@lru_cache(maxsize=4)
def _cached(path: str) -> Knowledge:
    return Knowledge.from_files(path)


def default_knowledge() -> Knowledge:
    """The repository's knowledge base, loaded once per process."""
    return _cached(str(knowledge_directory()))

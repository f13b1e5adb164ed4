"""What a knowledge-base search looks for: the terms of an agent's query. Pure.

Chinese has no spaces and most of its words are two characters long, so a
query is cut into overlapping character pairs (bigrams: 社保卡补办 → 社保, 保卡,
卡补, 补办); a lone Chinese character stands for itself, and runs of Latin
letters or digits (APP, 12345) are whole terms. :func:`knowledge.store.search`
scores each item by the terms it contains, rarer terms weighing more, so an
item is found whatever the word order ("怎么提取公积金" finds "公积金提取需要
什么材料？") and common pairs (怎么, 办理) count for little. Why bigrams and
not pg_trgm's trigrams: README, "The agents' console".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_QUERY_CHARS = 100
MAX_TERMS = 40
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Query:
    text: str                  # normalised, without spaces or punctuation
    terms: tuple[str, ...]     # distinct, in query order

    @property
    def empty(self) -> bool:
        return not self.terms


def parse(query: str) -> Query:
    """The normalised query and its terms (full-width to half-width, lower case,
    punctuation and spaces dropped)."""
    text = unicodedata.normalize("NFKC", query or "")[:MAX_QUERY_CHARS].lower()
    terms: list[str] = []
    for word in _WORD.findall(text):
        position = 0
        for han in _HAN.finditer(word):
            terms += _other(word[position:han.start()])
            run = han.group()
            terms += [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]
            position = han.end()
        terms += _other(word[position:])
    distinct = tuple(dict.fromkeys(terms))[:MAX_TERMS]
    return Query("".join(_WORD.findall(text)), distinct)


def _other(chunk: str) -> list[str]:
    """Latin letters or digits (or another script's letters) as one term."""
    return [chunk] if chunk else []

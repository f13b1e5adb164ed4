"""Text as the router sees it: normalised characters, filler words removed, and
toneless / fuzzy pinyin per character (pypinyin's offline tables)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from pypinyin import lazy_pinyin

from routing.vocabulary import FILLERS

# Everything but letters and digits of any script, * and # (\w without "_").
_DROP = re.compile(r"[^\w*#]+|_+")


def normalize(text: str) -> str:
    """Full-width → half-width, lower case; letters and digits (of any script:
    Han, Latin, Hangul, ...), * and # kept; a recogniser's spaces and all
    punctuation go. Han characters are also matched by their pinyin; other
    letters by themselves."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return _DROP.sub("", text)


def strip_fillers(text: str) -> tuple[str, list[str]]:
    """Remove filler words from normalised text; returns (content, removed)."""
    removed = []
    for filler in FILLERS:
        if filler in text:
            removed.extend([filler] * text.count(filler))
            text = text.replace(filler, "")
    return text, removed


def _split_chars(chunk: str) -> list[str]:
    return list(chunk)


@lru_cache(maxsize=8192)
def syllables(text: str) -> tuple[str, ...]:
    """Toneless pinyin, one entry per character of normalised ``text`` (a
    non-Chinese character stands for itself). Polyphones are read in context."""
    result = lazy_pinyin(text, errors=_split_chars)
    if len(result) != len(text):  # defensive: keep the one-per-character promise
        result = [lazy_pinyin(ch, errors=_split_chars)[0] if ch.strip() else ch for ch in text]
    return tuple(result)


_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))


@lru_cache(maxsize=4096)
def fuzzy(syllable: str) -> str:
    """Fold the distinctions a phone line and southern accents blur:
    zh/z ch/c sh/s, n/l, in/ing en/eng an/ang."""
    s = syllable
    for long, short in _INITIALS:
        if s.startswith(long):
            s = short + s[2:]
            break
    else:
        if s.startswith("n") and len(s) > 1:
            s = "l" + s[1:]
    if len(s) > 2 and s.endswith(("ing", "eng", "ang")):
        s = s[:-1]
    return s


def fuzzy_all(syls: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(fuzzy(s) for s in syls)

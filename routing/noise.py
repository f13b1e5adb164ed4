"""A model of the recogniser's confusions, for training data: a character heard
as another with the same toneless pinyin (公积金 → 公基金), or with a near
syllable (zh/z, n/l, in/ing, ...: :func:`routing.text.fuzzy`), a character
dropped, and the recogniser's habit of spacing every character. Seeded: the
same text, seed and inventory give the same variants."""

from __future__ import annotations

import random
from typing import Iterable

from routing.text import fuzzy, syllables

SUBSTITUTE = 0.12       # per Han character: heard as another character
SAME_PINYIN = 0.7       # ...of which with the same toneless syllable (else a near one)
DROP = 0.04             # per character: not heard at all
SPACED = 0.5            # per utterance: the recogniser's "营 业 执 照" spacing


def _han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


class Confusions:
    """Which characters a recogniser can write for which: built from a character
    inventory (the characters of the knowledge base and the corpus sources, so
    the substitutes are common characters, not rare ones)."""

    def __init__(self, characters: Iterable[str]):
        chars = sorted({c for c in characters if _han(c)})
        self.by_pinyin: dict[str, list[str]] = {}
        self.by_fuzzy: dict[str, list[str]] = {}
        self.pinyin: dict[str, str] = {}
        for c in chars:
            syl = syllables(c)[0]
            self.pinyin[c] = syl
            self.by_pinyin.setdefault(syl, []).append(c)
            self.by_fuzzy.setdefault(fuzzy(syl), []).append(c)

    def substitute(self, ch: str, rng: random.Random) -> str:
        syl = self.pinyin.get(ch) or syllables(ch)[0]
        pool = self.by_pinyin.get(syl, []) if rng.random() < SAME_PINYIN else self.by_fuzzy.get(fuzzy(syl), [])
        pool = [c for c in pool if c != ch]
        return rng.choice(pool) if pool else ch

    def noisy(self, text: str, rng: random.Random) -> str:
        """One recogniser-style reading of ``text`` (differs from it when possible)."""
        for _ in range(4):
            out = []
            for ch in text:
                if not _han(ch):
                    out.append(ch)
                    continue
                r = rng.random()
                if r < DROP and len(text) > 3:
                    continue
                out.append(self.substitute(ch, rng) if r < DROP + SUBSTITUTE else ch)
            heard = "".join(out)
            if heard != text:
                break
        if rng.random() < SPACED:
            heard = " ".join(c for c in heard if c.strip())
        return heard

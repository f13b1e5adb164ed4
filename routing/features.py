"""What the classifier sees of an utterance: character n-grams (1-3) of the
normalised, filler-free text, and n-grams (1-3) of its toneless pinyin, so a
homophone the recogniser wrote (公基金) shares features with the word (公积金).
One function for training and run time."""

from __future__ import annotations

from routing.text import normalize, strip_fillers, syllables

CHAR_N = (1, 2, 3)
PINYIN_N = (1, 2, 3)


def content(text: str) -> str:
    return strip_fillers(normalize(text))[0]


def features(text: str) -> list[str]:
    chars = content(text)
    out: list[str] = []
    padded = f"^{chars}$"
    for n in CHAR_N:
        source = chars if n == 1 else padded
        out.extend(source[i:i + n] for i in range(len(source) - n + 1))
    syl = ("^", *syllables(chars), "$") if chars else ()
    for n in PINYIN_N:
        out.extend("p:" + " ".join(syl[i:i + n]) for i in range(len(syl) - n + 1)
                   if n > 1 or syl[i] not in ("^", "$"))
    return out

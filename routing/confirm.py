"""The caller's answer to the confirmation question ("您是要办理住房公积金业务吗？").
Pure. Yes / no by voice or key; a correction ("不是，我要办社保") is a no that the
menu routes again."""

from __future__ import annotations

from enum import Enum

from routing.text import normalize, strip_fillers
from routing.vocabulary import CONFIRM_KEYS, CONFIRM_NO, CONFIRM_YES


class Answer(str, Enum):
    YES = "yes"
    NO = "no"
    UNCLEAR = "unclear"

    def __str__(self) -> str:
        return self.value


def confirm_answer(text: str = "", key: str | None = None) -> Answer:
    """``key``: a DTMF digit pressed instead of speaking (1 yes, 2 no)."""
    if key:
        value = CONFIRM_KEYS.get(key)
        return Answer.UNCLEAR if value is None else (Answer.YES if value else Answer.NO)
    content, _ = strip_fillers(normalize(text))
    original = normalize(text)
    if not original:
        return Answer.UNCLEAR
    if any(word in original for word in CONFIRM_NO if len(word) > 1) or content.startswith(CONFIRM_NO):
        return Answer.NO
    if content in CONFIRM_KEYS:
        return Answer.YES if CONFIRM_KEYS[content] else Answer.NO
    if any(content.startswith(word) for word in CONFIRM_YES) or original in ("嗯", "嗯嗯", "对对对"):
        return Answer.YES
    return Answer.UNCLEAR

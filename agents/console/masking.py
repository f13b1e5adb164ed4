"""Callers' numbers as a person may see them. Pure.

Agents see a caller's number masked (13812345678 → 138****5678): enough to
recognise a repeat caller, not to copy the number down. People of
``[console] full_number_role`` and above see it whole. Masking is done before
anything leaves the server, never by the page.
"""

from __future__ import annotations

from hotline.auth.roles import Role
from hotline.settings import ConsoleSettings

MASK = "*"


def mask_number(number: str | None, keep_start: int = 3, keep_end: int = 4) -> str | None:
    """``number`` with its middle replaced by ``*``. Where keeping ``keep_start``
    and ``keep_end`` characters would hide less than a third of it, a third at
    most is kept at each end instead (2512345 → 25***45, 8006 → 8**6)."""
    if not number:
        return number
    length = len(number)
    if length - keep_start - keep_end < max(1, length // 3):
        keep_start = keep_end = (length - 1) // 3
    return number[:keep_start] + MASK * (length - keep_start - keep_end) + number[length - keep_end:]


def sees_full_number(role: Role, settings: ConsoleSettings) -> bool:
    return role.admits(Role(settings.full_number_role))


def shown_number(number: str | None, role: Role, settings: ConsoleSettings) -> str | None:
    """The caller's number as ``role`` may see it."""
    if sees_full_number(role, settings):
        return number
    return mask_number(number, settings.mask_keep_start, settings.mask_keep_end)

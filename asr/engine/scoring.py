"""Character error rate, the usual score for Chinese and Korean recognition."""

from __future__ import annotations

from typing import Any, Sequence


def edit_distance(ref: Sequence[Any], hyp: Sequence[Any]) -> int:
    """Levenshtein distance between two strings (substitutions, insertions, deletions)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def character_error_rate(ref: str, hyp: str) -> float:
    """Edits per reference character, spaces ignored (they are not spoken)."""
    ref, hyp = ref.replace(" ", ""), hyp.replace(" ", "")
    return edit_distance(ref, hyp) / max(1, len(ref))

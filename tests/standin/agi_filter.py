"""Remove recorded AGI commands (and Asterisk's replies to them) from a script.

The work is done at message level on the concatenated "in" stream, because
one chunk may hold several messages or end in the middle of one; the
surviving bytes are then regrouped by the original chunk boundaries.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Callable, Sequence

from .framing import get_header, is_response, message_spans, parse_message
from .steps import Expect, Send, Step


def _dropped_expects(steps: Sequence[Step], predicate: Callable[[str], bool]) -> dict[int, Expect]:
    return {
        index: step for index, step in enumerate(steps)
        if isinstance(step, Expect) and step.action.lower() == "agi" and predicate(step.command)
    }


def _window_ends(steps: Sequence[Step], dropped: dict[int, Expect]) -> dict[int, int]:
    """For each dropped Expect, the index of the next kept Expect (or the end)."""
    kept = [i for i, s in enumerate(steps) if isinstance(s, Expect) and i not in dropped]
    ends = {}
    for index in dropped:
        later = [k for k in kept if k > index]
        ends[index] = later[0] if later else len(steps)
    return ends


def _belongs_to_dropped(headers: dict, owner: int, dropped: dict[int, Expect],
                        ends: dict[int, int]) -> bool:
    """Does this "in" message (sent by step ``owner``) answer a dropped command?"""
    event = headers.get("Event", "")
    for index, expect in dropped.items():
        if owner <= index:
            continue
        if is_response(headers) and expect.action_id and \
                get_header(headers, "ActionID") == expect.action_id:
            return True
        if event in ("AGIExecStart", "AGIExecEnd") and owner < ends[index] and \
                headers.get("Command") == expect.command:
            return True
        if event == "AsyncAGIExec" and expect.command_id and \
                get_header(headers, "CommandId") == expect.command_id:
            return True
    return False


def _subtract(start: int, end: int, removed: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of [start, end) not covered by the sorted, disjoint ``removed`` ranges."""
    parts, pos = [], start
    for r_start, r_end in removed:
        if r_end <= pos or r_start >= end:
            continue
        if r_start > pos:
            parts.append((pos, r_start))
        pos = max(pos, r_end)
    if pos < end:
        parts.append((pos, end))
    return parts


def drop_agi_commands(steps: Sequence[Step], predicate: Callable[[str], bool]) -> list[Step]:
    """Return ``steps`` without the AGI commands whose Command satisfies ``predicate``.

    Dropped: the ``Expect`` itself; the ``Response`` with its ActionID; the
    ``AGIExecStart``/``AGIExecEnd`` events with that Command that come after
    the Expect and before the next kept Expect; the ``AsyncAGIExec`` event
    whose ``CommandId`` is the command's CommandID. A chunk left empty
    disappears.
    """
    dropped = _dropped_expects(steps, predicate)
    if not dropped:
        return list(steps)
    ends = _window_ends(steps, dropped)

    send_indices = [i for i, s in enumerate(steps) if isinstance(s, Send)]
    starts, pos = [], 0
    for i in send_indices:
        starts.append(pos)
        pos += len(steps[i].data)
    stream = b"".join(steps[i].data for i in send_indices)

    spans, _ = message_spans(stream)
    removed = []
    for start, end in spans:
        owner = send_indices[bisect_right(starts, start) - 1]
        if _belongs_to_dropped(parse_message(stream[start:end]), owner, dropped, ends):
            removed.append((start, end))

    result: list[Step] = []
    chunk_of = {step_index: n for n, step_index in enumerate(send_indices)}
    for index, step in enumerate(steps):
        if index in dropped:
            continue
        if not isinstance(step, Send):
            result.append(step)
            continue
        chunk_start = starts[chunk_of[index]]
        parts = _subtract(chunk_start, chunk_start + len(step.data), removed)
        data = b"".join(stream[s:e] for s, e in parts)
        if data:
            result.append(Send(data=data, t=step.t, pause_after=step.pause_after))
    return result

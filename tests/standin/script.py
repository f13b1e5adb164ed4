"""An ordered, immutable list of replay steps plus editing helpers.

Every helper returns a new ``Script``; the original is never changed.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from .steps import Close, Expect, Send, Step

StepPredicate = Callable[[Step], bool]


def sends_containing(text: str | bytes) -> StepPredicate:
    """Predicate: a ``Send`` whose bytes contain ``text``."""
    needle = text.encode("utf-8") if isinstance(text, str) else text
    return lambda step: isinstance(step, Send) and needle in step.data


def expect_of(action: str, command: str | None = None) -> StepPredicate:
    """Predicate: an ``Expect`` of that Action (and AGI Command, if given)."""
    def check(step: Step) -> bool:
        if not isinstance(step, Expect) or step.action.lower() != action.lower():
            return False
        return command is None or step.command == command
    return check


def _as_predicate(where: int | str | bytes | StepPredicate, steps: tuple) -> int:
    """Resolve an index, a text (first Send containing it) or a predicate to an index."""
    if isinstance(where, int):
        index = where if where >= 0 else len(steps) + where
        if not 0 <= index < len(steps):
            raise IndexError(f"step index {where} out of range (script has {len(steps)} steps)")
        return index
    predicate = sends_containing(where) if isinstance(where, (str, bytes)) else where
    for index, step in enumerate(steps):
        if predicate(step):
            return index
    raise LookupError(f"no step matches {where!r}")


class Script:
    """The steps one connection plays: ``Send``, ``Expect`` and ``Close``."""

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)

    # -- sequence protocol -------------------------------------------------
    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return Script(self.steps[item])
        return self.steps[item]

    def __repr__(self) -> str:
        return f"Script({len(self.steps)} steps)"

    # -- inspection --------------------------------------------------------
    def sent_bytes(self) -> bytes:
        """Concatenation of every ``Send`` (what the client should receive)."""
        return b"".join(s.data for s in self.steps if isinstance(s, Send))

    def expects(self) -> list[Expect]:
        """All ``Expect`` steps, in order."""
        return [s for s in self.steps if isinstance(s, Expect)]

    def index_of(self, where: int | str | bytes | StepPredicate) -> int:
        """Index of the first step matching a text (in a Send) or a predicate."""
        return _as_predicate(where, self.steps)

    def has_login(self) -> bool:
        """True when the script expects the client to log in."""
        return any(expect_of("Login")(s) for s in self.steps)

    # -- edits -------------------------------------------------------------
    def until(self, where: int | str | bytes | StepPredicate) -> "Script":
        """Keep the steps up to and including the first one matching ``where``.

        ``where`` is an index, a text (the first Send containing it, e.g.
        ``"Event: Shutdown"``) or a step predicate. The cut script has no
        Close, so the connection stays open once it has played.
        """
        return Script(self.steps[: _as_predicate(where, self.steps) + 1])

    def after(self, where: int | str | bytes | StepPredicate) -> "Script":
        """Keep the steps after the first one matching ``where``."""
        return Script(self.steps[_as_predicate(where, self.steps) + 1:])

    def then_close(self) -> "Script":
        """Append a ``Close`` step (Asterisk closes the socket)."""
        last_t = self.steps[-1].t if self.steps else 0.0
        return Script(self.steps + (Close(t=last_t),))

    def without_close(self) -> "Script":
        """Drop every ``Close`` step (Asterisk keeps the socket open)."""
        return Script(s for s in self.steps if not isinstance(s, Close))

    def insert_raw(self, after: int | str | bytes | StepPredicate, data: bytes,
                   pause_after: float = 0.0) -> "Script":
        """Insert an extra raw ``Send`` after the step chosen by ``after``.

        Used to inject garbage lines, unknown events or truncated frames.
        """
        index = _as_predicate(after, self.steps)
        t = self.steps[index].t
        steps = list(self.steps)
        steps.insert(index + 1, Send(data=data, t=t, pause_after=pause_after))
        return Script(steps)

    def split_inside(self, text: str, occurrence: int = 1, at: int | None = None,
                     pause: float = 0.05) -> "Script":
        """Split the Send holding the ``occurrence``-th ``text`` inside its UTF-8 bytes.

        By default the cut is before the last byte of the first character
        (``王`` = E7 8E 8B is cut as E7 8E | 8B). ``at`` overrides the byte
        offset into ``text``'s UTF-8. The first part gets ``pause_after=pause``
        so the client sees two TCP reads.
        """
        encoded = text.encode("utf-8")
        if at is None:
            at = len(text[0].encode("utf-8")) - 1
        if not 0 < at < len(encoded):
            raise ValueError(f"cannot cut {text!r} at byte {at}: pick 0 < at < {len(encoded)}")
        seen = 0
        for index, step in enumerate(self.steps):
            if not isinstance(step, Send):
                continue
            pos = step.data.find(encoded)
            while pos >= 0:
                seen += 1
                if seen == occurrence:
                    cut = pos + at
                    first = Send(step.data[:cut], t=step.t, pause_after=pause)
                    second = Send(step.data[cut:], t=step.t, pause_after=step.pause_after)
                    return Script(self.steps[:index] + (first, second) + self.steps[index + 1:])
                pos = step.data.find(encoded, pos + 1)
        raise LookupError(f"{text!r} occurs {seen} times in the sends; wanted occurrence {occurrence}")

    def with_agi_command(self, recorded: str, ours: str) -> "Script":
        """Expect ``ours`` where the recorder sent the AGI command ``recorded``
        (Asterisk's recorded answers stay as they are)."""
        steps, changed = [], 0
        for step in self.steps:
            if isinstance(step, Expect) and step.action.lower() == "agi" and step.command == recorded:
                message = {k: (ours if k.lower() == "command" else v) for k, v in step.message.items()}
                step = Expect(message=message, raw=step.raw, t=step.t)
                changed += 1
            steps.append(step)
        if not changed:
            raise LookupError(f"no AGI command {recorded!r} in the script")
        return Script(steps)

    def without_agi(self, predicate: Callable[[str], bool]) -> "Script":
        """Drop the AGI commands whose Command satisfies ``predicate``.

        Removes their ``Expect`` and the messages Asterisk sent for them
        (Response, AGIExecStart/AGIExecEnd, AsyncAGIExec); other messages
        in the same chunks stay. See ``agi_filter.drop_agi_commands``.
        """
        from .agi_filter import drop_agi_commands
        return Script(drop_agi_commands(self.steps, predicate))

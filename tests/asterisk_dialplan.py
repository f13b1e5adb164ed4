"""A dialplan simulator for the tests: what extensions.conf does with a dialled number.

Used only by the tests (tests/test_asterisk_config.py checks
config/asterisk/extensions.conf with it); the product never runs a dialplan itself,
Asterisk does. It reads the file with the product's parser (:mod:`hotline.asterisk.parse`)
and lists ``(context, exten, priority, label, application, args)``, following
pbx/pbx_config.c closely enough for the tests: it resolves ``same =>`` and ``n``
priorities, and matches dialled numbers against extension patterns (``_X``, ``Z``,
``N``, ``[...]``, ``.``, ``!``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hotline.asterisk.parse import ConfError, ConfLine, Config

__all__ = [
    "DialplanStep",
    "Dialplan",
    "dialplan",
    "dialplan_rows",
    "split_app_args",
    "pattern_matches",
]

# Categories of extensions.conf that are settings, not contexts.
_NON_CONTEXTS = frozenset({"general", "globals"})


@dataclass(frozen=True)
class DialplanStep:
    context: str
    exten: str
    priority: int  # -1 for hints
    label: str | None
    app: str
    args: str
    path: Path | str
    lineno: int

    @property
    def argv(self) -> list[str]:
        return split_app_args(self.args)

    def row(self) -> tuple[str, str, str, str, str]:
        """(context, exten, priority or "priority(label)", application, args)."""
        pri = "hint" if self.priority < 0 else str(self.priority)
        if self.label:
            pri = f"{pri}({self.label})"
        return (self.context, self.exten, pri, self.app, self.args)


@dataclass
class Dialplan:
    steps: list[DialplanStep]
    includes: dict[str, list[str]]
    globals: dict[str, str]

    @property
    def contexts(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.steps:
            seen.setdefault(s.context, None)
        for ctx in self.includes:
            seen.setdefault(ctx, None)
        return list(seen)

    def extensions(self, context: str) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.steps:
            if s.context == context:
                seen.setdefault(s.exten, None)
        return list(seen)

    def extension(self, context: str, exten: str) -> list[DialplanStep]:
        """Steps of one extension (exact name as written), in priority order, no hints."""
        found = [s for s in self.steps if s.context == context and s.exten == exten and s.priority >= 0]
        return sorted(found, key=lambda s: s.priority)

    def match(self, context: str, number: str, _seen: frozenset[str] = frozenset()) -> tuple[str, str] | None:
        """(context, extension name) that handles ``number`` dialled in ``context``:
        an exact extension first, then the first matching pattern, then the
        contexts included by ``context``."""
        if context in _seen:
            return None
        names = self.extensions(context)
        if number in names:
            return (context, number)
        for name in names:
            if name.startswith("_") and pattern_matches(name, number):
                return (context, name)
        for inc in self.includes.get(context, []):
            hit = self.match(inc, number, _seen | {context})
            if hit:
                return hit
        return None

    def route(self, context: str, number: str) -> list[DialplanStep]:
        """Steps run for ``number`` dialled in ``context`` (see :meth:`match`)."""
        hit = self.match(context, number)
        return self.extension(*hit) if hit else []

    def step(self, context: str, exten: str, where: int | str) -> DialplanStep:
        """The step of ``context,exten`` at priority ``where`` (int) or label (str)."""
        for s in self.extension(context, exten):
            if (isinstance(where, int) and s.priority == where) or (isinstance(where, str) and s.label == where):
                return s
        raise KeyError(f"{context},{exten},{where}")

    def goto_target(self, step: DialplanStep) -> tuple[str, str, int | str]:
        """Where a ``Goto(...)`` step jumps: (context, exten, priority or label)."""
        if step.app.lower() != "goto":
            raise ValueError(f"not a Goto: {step.app}")
        parts = [p.strip() for p in step.argv]
        if len(parts) == 1:
            ctx, ext, pri = step.context, step.exten, parts[0]
        elif len(parts) == 2:
            ctx, ext, pri = step.context, parts[0], parts[1]
        elif len(parts) == 3:
            ctx, ext, pri = parts
        else:
            raise ValueError(f"bad Goto arguments: {step.args!r}")
        return (ctx, ext, int(pri) if pri.isdigit() else pri)

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        return [s.row() for s in self.steps]


def dialplan(config: Config) -> Dialplan:
    """Build the dialplan of a parsed extensions.conf."""
    steps: list[DialplanStep] = []
    includes: dict[str, list[str]] = {}
    globals_: dict[str, str] = {}
    for cat in config.categories:
        if cat.is_template:
            continue
        if cat.name in _NON_CONTEXTS:
            if cat.name == "globals":
                globals_.update(cat.items())
            continue
        context = cat.name
        last_exten: str | None = None
        last_pri = 0
        labels: dict[str, set[str]] = {}
        for line in cat.lines:
            key = line.key.lower()
            if key == "include":
                includes.setdefault(context, []).append(line.value.split(",")[0].strip())
                continue
            if key not in ("exten", "same"):
                continue  # switch, ignorepat, ... are not steps
            fields = line.value
            if key == "exten":
                exten, sep, fields = fields.partition(",")
                if not sep:
                    raise ConfError(f"exten without priority: {line.value!r}", line.path, line.lineno)
                exten = exten.strip()
                if exten != last_exten:
                    last_pri = 0
            else:
                if last_exten is None:
                    raise ConfError("'same =>' before any 'exten =>'", line.path, line.lineno)
                exten = last_exten
            pri_text, sep, app_text = fields.partition(",")
            if not sep:
                raise ConfError(f"no application: {line.value!r}", line.path, line.lineno)
            priority, label = _priority(pri_text.strip(), last_pri, line)
            app, args = _application(app_text.strip(), line)
            if label:
                if label in labels.setdefault(exten, set()):
                    raise ConfError(f"duplicate label {label!r} in {context},{exten}", line.path, line.lineno)
                labels[exten].add(label)
            steps.append(DialplanStep(context, exten, priority, label, app, args, line.path, line.lineno))
            last_exten = exten
            if priority >= 0:
                last_pri = priority
        includes.setdefault(context, [])
    return Dialplan(steps=steps, includes=includes, globals=globals_)


def dialplan_rows(config: Config) -> list[tuple[str, str, str, str, str]]:
    """(context, exten, priority/label, application, args) for every step."""
    return dialplan(config).rows()


_PRIORITY = re.compile(r"^(\d+|n(?:\+\d+)?|s|hint)(?:\(([^()]+)\))?$")


def _priority(text: str, last: int, line: ConfLine) -> tuple[int, str | None]:
    m = _PRIORITY.match(text)
    if not m:
        raise ConfError(f"bad priority {text!r}", line.path, line.lineno)
    pri, label = m.group(1), m.group(2)
    if pri == "hint":
        return -1, label
    if pri.isdigit():
        value = int(pri)
    elif pri == "s":
        value = last
    else:  # n or n+k
        value = last + (int(pri[2:]) if "+" in pri else 1)
    if value < 1:
        raise ConfError(f"priority {text!r} has no previous priority to follow", line.path, line.lineno)
    if value <= last and pri != "s":
        raise ConfError(f"priority {value} is not after {last}", line.path, line.lineno)
    return value, (label.strip() if label else None)


def _application(text: str, line: ConfLine) -> tuple[str, str]:
    if not text:
        raise ConfError("empty application", line.path, line.lineno)
    paren = text.find("(")
    if paren < 0:
        # Old style "App,arg1,arg2" is not used here; treat the rest as the name.
        return text.strip(), ""
    if not text.endswith(")"):
        raise ConfError(f"no closing parenthesis: {text!r}", line.path, line.lineno)
    return text[:paren].strip(), text[paren + 1 : -1]


def split_app_args(args: str) -> list[str]:
    """Split application arguments on top-level commas, as AST_STANDARD_APP_ARGS does
    (commas inside (), [], {} or double quotes do not split)."""
    if args == "":
        return []
    parts: list[str] = []
    depth = 0
    quoted = False
    buf: list[str] = []
    i = 0
    while i < len(args):
        ch = args[i]
        if ch == "\\" and i + 1 < len(args):
            buf.append(args[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "([{":
            depth += 1
        elif not quoted and ch in ")]}" and depth:
            depth -= 1
        elif ch == "," and not depth and not quoted:
            parts.append("".join(buf))
            buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def pattern_matches(pattern: str, number: str) -> bool:
    """Does ``number`` match an extension ``pattern`` (``_`` patterns, or exact)?"""
    if not pattern.startswith("_"):
        return pattern == number
    return re.fullmatch(_pattern_regex(pattern[1:]), number) is not None


def _pattern_regex(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        up = ch.upper()
        if up == "X":
            out.append("[0-9]")
        elif up == "Z":
            out.append("[1-9]")
        elif up == "N":
            out.append("[2-9]")
        elif ch == ".":
            out.append(".+")
        elif ch == "!":
            out.append(".*")
        elif ch == "[":
            end = body.find("]", i)
            if end < 0:
                raise ValueError(f"unterminated [ in pattern _{body}")
            members = body[i + 1 : end]
            out.append("[" + "".join("\\" + c if c in "\\^]" else c for c in members) + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)

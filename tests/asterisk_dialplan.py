"""A dialplan simulator for the tests: what extensions.conf does with a dialled number.

Used only by the tests (tests/test_asterisk_config.py checks
config/asterisk/extensions.conf with it); the product never runs a dialplan itself,
Asterisk does. It reads the file with the product's parser (:mod:`hotline.asterisk.parse`)
and lists ``(context, exten, priority, label, application, args)``, following
pbx/pbx_config.c closely enough for the tests: it resolves ``same =>`` and ``n``
priorities, and matches dialled numbers against extension patterns (``_X``, ``Z``,
``N``, ``[...]``, ``.``, ``!``). :func:`run` follows one simulated call through it
(variables, functions, ``$[...]``, Goto/GotoIf/Gosub/Return) and lists the
applications it ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hotline.asterisk.parse import ConfError, ConfLine, Config

__all__ = [
    "DialplanStep",
    "Dialplan",
    "DialplanRunError",
    "Executed",
    "Run",
    "dialplan",
    "run",
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


# --------------------------------------------------------------------------- execution


class DialplanRunError(ValueError):
    """The simulated channel did something the simulator cannot follow."""


@dataclass(frozen=True)
class Executed:
    """One application the simulated channel ran, with its arguments expanded."""

    context: str
    exten: str
    priority: int
    app: str
    args: str

    @property
    def argv(self) -> list[str]:
        return split_app_args(self.args)


@dataclass
class Run:
    """What a simulated call did: the applications in the order they ran."""

    executed: list[Executed]
    hung_up: bool  # ended by Hangup() (False: it ran off the end of an extension)

    @property
    def apps(self) -> list[str]:
        return [e.app for e in self.executed]

    def index(self, app: str, first_arg: str | None = None) -> int:
        """Position of the first ``app`` (whose first argument is ``first_arg``), or -1."""
        for i, e in enumerate(self.executed):
            if e.app.lower() == app.lower() and (first_arg is None or (e.argv[:1] == [first_arg])):
                return i
        return -1

    def all(self, app: str) -> list[Executed]:
        return [e for e in self.executed if e.app.lower() == app.lower()]


def run(
    dp: Dialplan,
    context: str,
    number: str,
    *,
    variables: dict[str, str] | None = None,
    functions: dict[str, Callable[[str], str]] | None = None,
    max_steps: int = 500,
) -> Run:
    """Simulate a channel dialling ``number`` in ``context``, as pbx.c runs it.

    Substitutes ``${VAR}``, ``${VAR:offset[:length]}``, ``${FUNC(args)}`` (from
    ``functions``, keyed by upper-case name) and ``$[expression]``; follows ``Goto``,
    ``GotoIf``, ``Gosub``/``Return`` (with ``${ARGn}``) and ``Set``; stops at
    ``Hangup`` or when the extension has no next priority. Every other application is
    recorded and the channel goes on to the next priority, as if it returned 0.
    A variable nobody set is empty, as in Asterisk; an unknown function raises
    :class:`DialplanRunError` rather than guessing.
    """
    hit = dp.match(context, number)
    if hit is None:
        raise DialplanRunError(f"{number} does not match anything in {context}")
    channel = dict(variables or {})
    funcs = {k.upper(): v for k, v in (functions or {}).items()}
    # Gosub return points (context, extension, priority, dialled number) and saved ARGs.
    frames: list[tuple[tuple[str, str, int, str], dict[str, str]]] = []
    args_now: dict[str, str] = {}
    ctx, ext, pri, dialled = hit[0], hit[1], 1, number
    executed: list[Executed] = []
    for _ in range(max_steps):
        step = next((s for s in dp.extension(ctx, ext) if s.priority == pri), None)
        if step is None:
            return Run(executed, hung_up=False)
        scope = {**channel, **args_now, "EXTEN": dialled, "CONTEXT": ctx}
        args = _expand(step.args, scope, funcs)
        executed.append(Executed(ctx, ext, pri, step.app, args))
        app = step.app.lower()
        nxt = (ctx, ext, pri + 1, dialled)
        if app == "hangup":
            return Run(executed, hung_up=True)
        if app == "set":
            name, sep, value = args.partition("=")
            if not sep:
                raise DialplanRunError(f"Set without '=': {args!r} at {ctx},{ext},{pri}")
            channel[name.strip()] = value
        elif app == "goto":
            nxt = _resolve(dp, ctx, dialled, split_app_args(args))
        elif app == "gotoif":
            condition, _, targets = args.partition("?")
            when_true, _, when_false = targets.partition(":")
            chosen = when_true if _true(condition) else when_false
            if chosen:
                nxt = _resolve(dp, ctx, dialled, [p.strip() for p in chosen.split(",")])
        elif app == "gosub":
            target, call_args = _gosub_target(args)
            frames.append(((ctx, ext, pri + 1, dialled), args_now))
            args_now = {f"ARG{i}": value for i, value in enumerate(call_args, start=1)}
            nxt = _resolve(dp, ctx, dialled, target)
        elif app == "return":
            if not frames:
                raise DialplanRunError(f"Return without Gosub at {ctx},{ext},{pri}")
            nxt, args_now = frames.pop()
        ctx, ext, pri, dialled = nxt
    raise DialplanRunError(f"more than {max_steps} steps: a loop?")


def _resolve(dp: Dialplan, ctx: str, dialled: str, parts: list[str]) -> tuple[str, str, int, str]:
    """Where a jump lands: (context, extension as written, priority, dialled number)."""
    parts = [p.strip() for p in parts]
    if len(parts) == 1:
        t_ctx, number, where = ctx, dialled, parts[0]
    elif len(parts) == 2:
        t_ctx, number, where = ctx, parts[0], parts[1]
    elif len(parts) == 3:
        t_ctx, number, where = parts
    else:
        raise DialplanRunError(f"bad jump target {parts!r}")
    hit = dp.match(t_ctx, number)
    if hit is None:
        raise DialplanRunError(f"jump to missing extension {t_ctx},{number}")
    if where.isdigit():
        return (hit[0], hit[1], int(where), number)
    return (hit[0], hit[1], dp.step(hit[0], hit[1], where).priority, number)


def _gosub_target(args: str) -> tuple[list[str], list[str]]:
    """``ctx,exten,pri(arg1,arg2)`` -> (["ctx", "exten", "pri"], ["arg1", "arg2"])."""
    call_args: list[str] = []
    m = re.search(r"\((.*)\)\s*$", args)
    if m:
        call_args = split_app_args(m.group(1))
        args = args[: m.start()]
    return [p.strip() for p in args.split(",")], call_args


def _true(value: str) -> bool:
    """pbx_checkcondition: empty is false, a number is true when non-zero, any other text true."""
    value = value.strip()
    if not value:
        return False
    try:
        return int(value) != 0
    except ValueError:
        return True


def _expand(text: str, scope: dict[str, str], funcs: dict[str, Callable[[str], str]]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("${", i) or text.startswith("$[", i):
            opener = text[i + 1]
            closer = "}" if opener == "{" else "]"
            end = _matching(text, i + 1, opener, closer)
            inner = _expand(text[i + 2 : end], scope, funcs)
            out.append(_variable_value(inner, scope, funcs) if opener == "{" else _evaluate(inner))
            i = end + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _matching(text: str, start: int, opener: str, closer: str) -> int:
    depth = 0
    for j in range(start, len(text)):
        if text[j] == opener:
            depth += 1
        elif text[j] == closer:
            depth -= 1
            if depth == 0:
                return j
    raise DialplanRunError(f"unbalanced {opener}{closer} in {text!r}")


def _variable_value(inner: str, scope: dict[str, str], funcs: dict[str, Callable[[str], str]]) -> str:
    m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\((.*)\)", inner)
    if m:
        func = funcs.get(m.group(1).upper())
        if func is None:
            raise DialplanRunError(f"function {m.group(1)}() is not simulated")
        return func(m.group(2))
    m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?::(-?\d+)(?::(-?\d+))?)?", inner)
    if not m:
        raise DialplanRunError(f"cannot substitute ${{{inner}}}")
    value = scope.get(m.group(1), "")
    if m.group(2) is not None:
        start = int(m.group(2))
        value = value[start:] if start >= 0 else value[start:]
        if m.group(3) is not None:
            length = int(m.group(3))
            value = value[:length] if length >= 0 else value[:length]
    return value


_EXPR_TOKEN = re.compile(r'\s*(?:("[^"]*")|(!=|<=|>=|=~|[|&=<>+\-*/%()!])|([^\s|&=<>+\-*/%()!"]+))')


def _evaluate(expression: str) -> str:
    """A subset of Asterisk's ``$[...]`` (ast_expr2): | & comparisons + - * / %,
    parentheses, double-quoted strings (quotes removed). Comparisons are numeric when
    both sides are integers, else textual; they give "1" or "0"."""
    tokens: list[str] = []
    pos = 0
    expression = expression.strip()
    while pos < len(expression):
        m = _EXPR_TOKEN.match(expression, pos)
        if not m or m.end() == pos:
            raise DialplanRunError(f"cannot read expression {expression!r}")
        quoted, op, word = m.groups()
        tokens.append(quoted if quoted is not None else (op or word))
        pos = m.end()
    parser = _ExprParser(tokens, expression)
    value = parser.parse_or()
    if parser.pos != len(tokens):
        raise DialplanRunError(f"trailing tokens in expression {expression!r}")
    return value


class _ExprParser:
    def __init__(self, tokens: list[str], source: str):
        self.tokens = tokens
        self.pos = 0
        self.source = source

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        if self.pos >= len(self.tokens):
            raise DialplanRunError(f"expression ends too early: {self.source!r}")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def parse_or(self) -> str:
        left = self.parse_and()
        while self._peek() == "|":
            self._take()
            right = self.parse_and()
            left = left if _true(left) else right
        return left

    def parse_and(self) -> str:
        left = self.parse_compare()
        while self._peek() == "&":
            self._take()
            right = self.parse_compare()
            left = left if (_true(left) and _true(right)) else "0"
        return left

    def parse_compare(self) -> str:
        left = self.parse_sum()
        while self._peek() in ("=", "!=", "<", ">", "<=", ">="):
            op = self._take()
            right = self.parse_sum()
            a, b = _number(left), _number(right)
            x, y = (a, b) if a is not None and b is not None else (left, right)
            result = {"=": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]
            left = "1" if result else "0"
        return left

    def parse_sum(self) -> str:
        left = self.parse_product()
        while self._peek() in ("+", "-"):
            op = self._take()
            right = self.parse_product()
            left = str(self._int(left) + self._int(right) if op == "+" else self._int(left) - self._int(right))
        return left

    def parse_product(self) -> str:
        left = self.parse_atom()
        while self._peek() in ("*", "/", "%"):
            op = self._take()
            right = self._int(self.parse_atom())
            value = self._int(left)
            left = str(value * right if op == "*" else (int(value / right) if op == "/" else value % right))
        return left

    def parse_atom(self) -> str:
        token = self._take()
        if token == "(":
            value = self.parse_or()
            if self._take() != ")":
                raise DialplanRunError(f"missing ) in {self.source!r}")
            return value
        if token == "!":
            return "0" if _true(self.parse_atom()) else "1"
        if token in ("|", "&", "=", "!=", "<", ">", "<=", ">=", "+", "*", "/", "%", ")"):
            raise DialplanRunError(f"unexpected {token!r} in {self.source!r}")
        if token == "-":
            return str(-self._int(self.parse_atom()))
        return token[1:-1] if token.startswith('"') else token

    def _int(self, value: str) -> int:
        number = _number(value)
        if number is None:
            raise DialplanRunError(f"{value!r} is not a number in {self.source!r}")
        return number


def _number(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None

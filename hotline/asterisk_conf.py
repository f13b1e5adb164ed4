"""A small parser of Asterisk's ``.conf`` syntax, plus a dialplan helper.

It follows what Asterisk's own loader (main/config.c, pbx/pbx_config.c) does, closely
enough for tests and generators to reason about /etc/asterisk:

- categories ``[name]``, templates ``[name](!)``, inheritance ``[name](tpl1,tpl2)``,
  additions to an earlier category ``[name](+)``; the template chain is applied when the
  category is defined, so a category's lines are its templates' lines, in the order
  the templates are listed, followed by its own lines;
- ``key = value`` and ``key => value``; repeated keys are kept, in order (the effective
  value of a repeated key is the last one, as in ``ast_variable_retrieve``);
- ``;`` comments (``\\;`` is a literal semicolon), ``;-- block comments --;`` (nested);
- ``#include`` / ``#tryinclude`` resolved relative to the configuration directory (not
  to the including file), with glob patterns. An included file continues the includer's
  current category, so ``#include`` inside a section adds lines to that section.

The dialplan helper lists ``(context, exten, priority, label, application, args)`` for
extensions.conf, resolving ``same =>`` and ``n`` priorities, and matches dialled
numbers against extension patterns (``_X``, ``Z``, ``N``, ``[...]``, ``.``, ``!``).
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

__all__ = [
    "ConfError",
    "ConfLine",
    "Category",
    "Config",
    "parse_file",
    "parse_text",
    "DialplanStep",
    "Dialplan",
    "dialplan",
    "dialplan_rows",
    "split_app_args",
    "pattern_matches",
]


class ConfError(ValueError):
    """A configuration file Asterisk would reject (or mis-read)."""

    def __init__(self, message: str, path: Path | str | None = None, lineno: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{lineno}: " if lineno else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.lineno = lineno


@dataclass(frozen=True)
class ConfLine:
    key: str
    value: str
    op: str  # "=" or "=>"
    path: Path | str
    lineno: int
    inherited: bool = False  # copied from a template

    def as_pair(self) -> tuple[str, str]:
        return (self.key, self.value)


@dataclass
class Category:
    name: str
    is_template: bool
    templates: tuple[str, ...]
    path: Path | str
    lineno: int
    lines: list[ConfLine] = field(default_factory=list)

    def items(self) -> list[tuple[str, str]]:
        """Ordered (key, value) pairs, template lines first."""
        return [line.as_pair() for line in self.lines]

    def own_items(self) -> list[tuple[str, str]]:
        return [line.as_pair() for line in self.lines if not line.inherited]

    def get(self, key: str, default: str | None = None) -> str | None:
        """Effective value of ``key``: the last occurrence wins, as in Asterisk."""
        value = default
        for line in self.lines:
            if line.key == key:
                value = line.value
        return value

    def get_all(self, key: str) -> list[str]:
        return [line.value for line in self.lines if line.key == key]

    def __contains__(self, key: object) -> bool:
        return any(line.key == key for line in self.lines)

    @property
    def type(self) -> str | None:
        """The ``type`` option (pjsip.conf and other sorcery-backed files)."""
        return self.get("type")


@dataclass
class Config:
    categories: list[Category]
    files: list[Path | str]  # every file read, in order (the top file first)

    def __iter__(self) -> Iterator[Category]:
        return iter(self.categories)

    def objects(self) -> list[Category]:
        """Categories that are not templates (what Asterisk actually instantiates)."""
        return [c for c in self.categories if not c.is_template]

    def find(self, name: str, *, templates: bool = False) -> list[Category]:
        return [c for c in self.categories if c.name == name and (templates or not c.is_template)]

    def get(self, name: str, type: str | None = None) -> Category:
        """The single non-template category ``name`` (of ``type`` when given)."""
        found = [c for c in self.find(name) if type is None or c.type == type]
        if len(found) != 1:
            what = f"[{name}]" + (f" of type {type}" if type else "")
            raise KeyError(f"{len(found)} categories {what}")
        return found[0]

    def names(self) -> list[str]:
        return [c.name for c in self.objects()]

    def of_type(self, type: str) -> list[Category]:
        return [c for c in self.objects() if c.type == type]


# --------------------------------------------------------------------------- parsing

_DIRECTIVE = re.compile(r"#\s*(include|tryinclude|exec|tryexec)\b\s*(.*)$")


def parse_file(
    path: str | Path,
    *,
    config_dir: str | Path | None = None,
) -> Config:
    """Parse one configuration file and everything it includes.

    ``config_dir`` is where relative ``#include`` paths are resolved (Asterisk's
    ``astetcdir``); it defaults to the directory of ``path``. A missing ``#include``
    target raises :class:`ConfError` (Asterisk refuses the file); a missing
    ``#tryinclude`` target is skipped.
    """
    path = Path(path)
    parser = _Parser(Path(config_dir) if config_dir is not None else path.parent)
    parser.load(path, None)
    return Config(parser.categories, parser.files)


def parse_text(
    text: str,
    *,
    name: str = "<text>",
    config_dir: str | Path | None = None,
) -> Config:
    """Parse configuration text; ``#include`` is resolved against ``config_dir``."""
    parser = _Parser(Path(config_dir) if config_dir is not None else None)
    parser.files.append(name)
    parser.parse_lines(text.splitlines(), name, None)
    return Config(parser.categories, parser.files)


class _Parser:
    def __init__(self, config_dir: Path | None):
        self.config_dir = config_dir
        self.categories: list[Category] = []
        self.files: list[Path | str] = []
        self._stack: list[Path] = []

    # Files -------------------------------------------------------------------
    def load(self, path: Path, current: Category | None) -> Category | None:
        resolved = path.resolve()
        if resolved in self._stack:
            chain = " -> ".join(str(p) for p in [*self._stack, resolved])
            raise ConfError(f"#include loop: {chain}", path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfError("file not found", path) from exc
        except UnicodeDecodeError as exc:
            raise ConfError(f"not UTF-8: {exc}", path) from exc
        self.files.append(path)
        self._stack.append(resolved)
        try:
            return self.parse_lines(text.splitlines(), path, current)
        finally:
            self._stack.pop()

    def _include(self, arg: str, optional: bool, where: Path | str, lineno: int, current: Category | None) -> None:
        target = arg.strip()
        if len(target) >= 2 and target[0] in "\"<" and target[-1] in "\">":
            target = target[1:-1].strip()
        if not target:
            raise ConfError("#include without a file name", where, lineno)
        if Path(target).is_absolute():
            pattern = target
        else:
            if self.config_dir is None:
                raise ConfError(f"cannot resolve #include {target!r} without a config directory", where, lineno)
            pattern = str(self.config_dir / target)
        if glob.has_magic(pattern):
            matches = [Path(p) for p in sorted(glob.glob(pattern))]
        else:
            matches = [Path(pattern)] if Path(pattern).is_file() else []
        if not matches:
            if optional:
                return
            raise ConfError(f"#include {target!r}: no such file ({pattern})", where, lineno)
        for match in matches:
            # The included file starts in the includer's current category; what it
            # defines afterwards does not change the includer's current category
            # (config.c keeps the category pointer per file being read).
            self.load(match, current)

    # Lines -------------------------------------------------------------------
    def parse_lines(self, lines: Iterable[str], where: Path | str, current: Category | None) -> Category | None:
        depth = 0  # nesting of ;-- block comments --;
        block_start = 0
        for lineno, raw in enumerate(lines, start=1):
            text, depth, opened = _strip_comments(raw, depth)
            if opened and depth and not block_start:
                block_start = lineno
            if not depth:
                block_start = 0
            text = text.strip()
            if not text:
                continue
            if text.startswith("["):
                current = self._category(text, where, lineno)
                continue
            if text.startswith("#"):
                m = _DIRECTIVE.match(text)
                if not m:
                    raise ConfError(f"unknown directive {text.split()[0]!r}", where, lineno)
                kind, arg = m.group(1), m.group(2)
                if kind in ("exec", "tryexec"):
                    raise ConfError(f"#{kind} is not supported (it runs a program at load time)", where, lineno)
                self._include(arg, kind == "tryinclude", where, lineno, current)
                continue
            if current is None:
                raise ConfError(f"line outside any [category]: {text!r}", where, lineno)
            current.lines.append(_variable(text, where, lineno))
        if depth:
            raise ConfError("unterminated ;-- block comment", where, block_start or None)
        return current

    def _category(self, text: str, where: Path | str, lineno: int) -> Category:
        close = text.find("]")
        if close < 0:
            raise ConfError(f"category header without ']': {text!r}", where, lineno)
        name = text[1:close].strip()
        if not name:
            raise ConfError("empty category name", where, lineno)
        rest = text[close + 1 :].strip()
        options: list[str] = []
        if rest:
            if not (rest.startswith("(") and rest.endswith(")")):
                raise ConfError(f"unexpected text after category name: {rest!r}", where, lineno)
            options = [o.strip() for o in rest[1:-1].split(",") if o.strip()]
        is_template = "!" in options
        append = "+" in options
        bases = tuple(o for o in options if o not in ("!", "+"))
        if append:
            if is_template or bases:
                raise ConfError("(+) cannot be combined with other category options", where, lineno)
            earlier = [c for c in self.categories if c.name == name]
            if not earlier:
                raise ConfError(f"(+) on unknown category [{name}]", where, lineno)
            return earlier[-1]
        category = Category(name=name, is_template=is_template, templates=bases, path=where, lineno=lineno)
        for base_name in bases:
            base = next((c for c in self.categories if c.name == base_name), None)
            if base is None:
                raise ConfError(f"[{name}] inherits from unknown category [{base_name}]", where, lineno)
            category.lines.extend(
                ConfLine(l.key, l.value, l.op, l.path, l.lineno, inherited=True) for l in base.lines
            )
        self.categories.append(category)
        return category


def _strip_comments(raw: str, depth: int) -> tuple[str, int, bool]:
    """Remove comments from one line. Returns (text, block depth after the line,
    whether a block comment was opened on it)."""
    out: list[str] = []
    i = 0
    opened = False
    n = len(raw)
    while i < n:
        if depth:
            if raw.startswith("--;", i):
                depth -= 1
                i += 3
            elif _opens_block(raw, i):
                depth += 1
                i += 3
            else:
                i += 1
            continue
        ch = raw[i]
        if ch == "\\" and i + 1 < n and raw[i + 1] == ";":
            out.append(";")  # escaped semicolon: literal, backslash dropped
            i += 2
            continue
        if ch == ";":
            if _opens_block(raw, i):
                depth += 1
                opened = True
                i += 3
                continue
            break  # line comment
        out.append(ch)
        i += 1
    return "".join(out), depth, opened


def _opens_block(raw: str, i: int) -> bool:
    """``;--`` opens a block comment, but ``;---...`` (a ruler line) does not."""
    return raw.startswith(";--", i) and not raw.startswith(";---", i)


def _variable(text: str, where: Path | str, lineno: int) -> ConfLine:
    eq = text.find("=")
    if eq < 0:
        raise ConfError(f"no '=' in line: {text!r}", where, lineno)
    key = text[:eq].strip()
    if eq + 1 < len(text) and text[eq + 1] == ">":
        op, value = "=>", text[eq + 2 :]
    else:
        op, value = "=", text[eq + 1 :]
    if not key:
        raise ConfError(f"empty key: {text!r}", where, lineno)
    return ConfLine(key=key, value=value.strip(), op=op, path=where, lineno=lineno)


# --------------------------------------------------------------------------- dialplan

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

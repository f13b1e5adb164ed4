"""A small parser of Asterisk's ``.conf`` syntax.

It follows what Asterisk's own loader (main/config.c) does, closely enough for the
generators and the tests to reason about /etc/asterisk:

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

The dialplan simulation the tests run on extensions.conf is in tests/asterisk_dialplan.py.
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


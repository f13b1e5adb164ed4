"""One knowledge-base item and the checks every item must pass, whatever file
format it came from. Pure: no files, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

# A stable slug: lower-case ASCII words joined by ".", "-" or "_"
# (by convention "<department>.<topic>", e.g. "housing_fund.withdraw_rent").
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*$")
ID_MAX_CHARS = 80
# The answer is played to callers as self-service: short enough to speak.
MAX_ANSWER_SENTENCES = 2
MAX_ANSWER_CHARS = 100
MAX_QUESTION_CHARS = 80
MIN_KEYWORD_CHARS = 2
MAX_KEYWORD_CHARS = 20
_SENTENCE_END = re.compile(r"[。！？!?]+")
# CSV keeps lists in one cell, separated by this character.
LIST_SEPARATOR = "|"

FIELDS = ("id", "department", "question", "answer", "procedure", "materials",
          "keywords", "alternatives", "self_service", "overview")
LIST_FIELDS = ("procedure", "materials", "keywords", "alternatives")
BOOL_FIELDS = ("self_service", "overview")
REQUIRED_FIELDS = ("id", "question", "answer", "keywords")


@dataclass(frozen=True)
class KnowledgeItem:
    """``overview`` marks the item that describes a whole department (its keywords
    are the department's own names: 公积金, 社保 ...). The router uses it when a
    caller names the department but no particular matter. ``self_service``: the
    answer may be played to the caller instead of queueing (office hours,
    addresses, progress look-ups). ``alternatives``: other ways callers ask the
    standard question (whole questions, where ``keywords`` are the terms in them);
    the router's classifier trains on them and picks items by them."""

    id: str
    department: str
    question: str
    answer: str
    procedure: tuple[str, ...] = ()
    materials: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()
    self_service: bool = False
    overview: bool = False

    def to_dict(self, *, with_department: bool = True, compact: bool = False) -> dict[str, Any]:
        """JSON-ready. ``compact`` leaves out false flags and no alternatives (the
        files' style)."""
        out: dict[str, Any] = {"id": self.id}
        if with_department:
            out["department"] = self.department
        out.update(question=self.question, answer=self.answer, procedure=list(self.procedure),
                   materials=list(self.materials), keywords=list(self.keywords))
        if self.alternatives or not compact:
            out["alternatives"] = list(self.alternatives)
        for name in BOOL_FIELDS:
            value = getattr(self, name)
            if value or not compact:
                out[name] = value
        return out


@dataclass(frozen=True)
class Problem:
    """One validation error: which file, which row or item, which field, what."""

    file: str
    where: str            # "row 7" (CSV, spreadsheet numbering) or "item 3" (JSON, from 1)
    field: str | None
    message: str
    item_id: str | None = None

    def __str__(self) -> str:
        location = f"{self.file}: {self.where}"
        if self.item_id:
            location += f" (id {self.item_id})"
        if self.field:
            location += f", field {self.field!r}"
        return f"{location}: {self.message}"


@dataclass
class _Checker:
    file: str
    where: str
    item_id: str | None = None
    problems: list[Problem] = field(default_factory=list)

    def add(self, field_name: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, self.where, field_name, message, self.item_id))


_NOT_WORDS = re.compile(r"[\s，,。.！!？?、；;：:“”\"'（）()…~～-]+")


def question_key(text: str) -> str:
    """A question without punctuation and spaces: two items must not be asked alike."""
    return _NOT_WORDS.sub("", text).lower()


def sentence_count(text: str) -> int:
    parts = [p for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    return len(parts)


def _text(check: _Checker, raw: Mapping[str, Any], name: str, max_chars: int | None = None) -> str:
    value = raw.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        check.add(name, "is missing or empty")
        return ""
    if not isinstance(value, str):
        check.add(name, f"must be text, not {type(value).__name__}")
        return ""
    value = value.strip()
    if max_chars is not None and len(value) > max_chars:
        check.add(name, f"has {len(value)} characters; at most {max_chars}")
    return value


def _list(check: _Checker, raw: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = raw.get(name)
    if value is None:
        return ()
    if isinstance(value, str):  # CSV cell
        value = [part for part in value.split(LIST_SEPARATOR)]
        value = [part.strip() for part in value if part.strip()]
    if not isinstance(value, list):
        check.add(name, f"must be a list of texts, not {type(value).__name__}")
        return ()
    out = []
    for index, entry in enumerate(value, 1):
        if not isinstance(entry, str) or not entry.strip():
            check.add(name, f"entry {index} must be non-empty text, not {entry!r}")
            continue
        if LIST_SEPARATOR in entry:
            check.add(name, f"entry {index} contains {LIST_SEPARATOR!r}, which separates entries in CSV")
        out.append(entry.strip())
    return tuple(out)


_TRUE = {"true", "yes", "1", "y", "是", "t"}
_FALSE = {"false", "no", "0", "n", "否", "f", ""}


def _bool(check: _Checker, raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    check.add(name, f"must be true or false, not {value!r}")
    return False


def check_item(raw: Mapping[str, Any], *, file: str, where: str, departments: Iterable[str],
               default_department: str | None = None) -> tuple[KnowledgeItem | None, list[Problem]]:
    """Validate one raw item (a JSON object or a CSV row as a dict). Returns the
    item (None if anything is wrong) and every problem found, each naming the
    file, the row/item and the field."""
    raw_id = raw.get("id")
    check = _Checker(file, where, raw_id if isinstance(raw_id, str) and raw_id.strip() else None)
    unknown = sorted(set(raw) - set(FIELDS))
    for name in unknown:
        check.add(name, f"unknown field (expected {', '.join(FIELDS)})")

    item_id = _text(check, raw, "id", ID_MAX_CHARS)
    if item_id and not ID_PATTERN.match(item_id):
        check.add("id", f"{item_id!r} is not a slug (lower-case letters, digits and . - _ , e.g. tax.invoice)")

    known = list(departments)
    department = raw.get("department") or default_department
    if isinstance(department, str):
        department = department.strip()
    if not department:
        check.add("department", "is missing")
    elif department not in known:
        check.add("department", f"{department!r} is not a department in hotline.toml ({', '.join(known)})")
    elif default_department and department != default_department:
        check.add("department", f"{department!r} differs from the file's department {default_department!r}")

    question = _text(check, raw, "question", MAX_QUESTION_CHARS)
    answer = _text(check, raw, "answer", MAX_ANSWER_CHARS)
    if answer and sentence_count(answer) > MAX_ANSWER_SENTENCES:
        check.add("answer", f"has {sentence_count(answer)} sentences; a self-service answer has at most "
                            f"{MAX_ANSWER_SENTENCES}")
    procedure = _list(check, raw, "procedure")
    materials = _list(check, raw, "materials")
    keywords = _list(check, raw, "keywords")
    if "keywords" in raw and not keywords and not any(p.field == "keywords" for p in check.problems):
        check.add("keywords", "needs at least one keyword")
    elif "keywords" not in raw:
        check.add("keywords", "is missing")
    seen: set[str] = set()
    for keyword in keywords:
        if len(keyword) < MIN_KEYWORD_CHARS or len(keyword) > MAX_KEYWORD_CHARS:
            check.add("keywords", f"{keyword!r} must have {MIN_KEYWORD_CHARS} to {MAX_KEYWORD_CHARS} characters")
        if keyword in seen:
            check.add("keywords", f"{keyword!r} is listed twice")
        seen.add(keyword)
    alternatives = _list(check, raw, "alternatives")
    asked: set[str] = {question_key(question)}
    for alternative in alternatives:
        if len(alternative) > MAX_QUESTION_CHARS:
            check.add("alternatives", f"{alternative!r} has {len(alternative)} characters; at most "
                                      f"{MAX_QUESTION_CHARS}")
        if question_key(alternative) in asked:
            check.add("alternatives", f"{alternative!r} repeats the question or another alternative")
        asked.add(question_key(alternative))
    self_service = _bool(check, raw, "self_service")
    overview = _bool(check, raw, "overview")
    if check.problems:
        return None, check.problems
    return KnowledgeItem(id=item_id, department=department, question=question, answer=answer,
                         procedure=procedure, materials=materials, keywords=keywords,
                         alternatives=alternatives, self_service=self_service, overview=overview), []

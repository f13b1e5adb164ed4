"""Knowledge-base files: load, validate, import and export (JSON and CSV).

Layout editors work with: ``config/knowledge/<department>.json``, one file per
department::

    {"department": "housing_fund",
     "items": [{"id": "housing_fund.withdraw_rent", "question": "...", "answer": "...",
                "procedure": ["..."], "materials": ["..."], "keywords": ["..."],
                "alternatives": ["..."], "self_service": false, "overview": false}]}

A JSON file may also be a plain list of items that each name their department.
CSV: one row per item, header ``id,department,question,answer,procedure,materials,
keywords,alternatives,self_service,overview`` (``alternatives`` may be left out); list cells separate entries with ``|``; UTF-8
(a spreadsheet's byte-order mark is fine). Every validation error names the file,
the row (CSV, numbered as a spreadsheet shows it: the header is row 1) or the item
(JSON, from 1), and the field; all errors are reported at once.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from knowledge.model import (
    BOOL_FIELDS,
    FIELDS,
    LIST_FIELDS,
    LIST_SEPARATOR,
    KnowledgeItem,
    Problem,
    check_item,
    question_key,
)
from hotline.settings import REPO_ROOT, Settings, load_settings

DEFAULT_DIRECTORY = REPO_ROOT / "config" / "knowledge"
ENV_DIRECTORY = "HOTLINE_KNOWLEDGE_DIR"
SUFFIXES = (".json", ".csv")


class KnowledgeFileError(ValueError):
    """The knowledge files have problems; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the knowledge base:\n{shown}{more}")


def knowledge_directory(env: Mapping[str, str] | None = None) -> Path:
    """``HOTLINE_KNOWLEDGE_DIR`` or the repository's ``config/knowledge``."""
    env = os.environ if env is None else env
    return Path(env.get(ENV_DIRECTORY) or DEFAULT_DIRECTORY)


def department_codes(settings: Settings | None = None) -> tuple[str, ...]:
    settings = settings or load_settings()
    return tuple(d.code for d in settings.departments)


# ---------------------------------------------------------------- reading

def parse_json(text: str, source: str, departments: Iterable[str]) -> tuple[list[KnowledgeItem], list[Problem]]:
    departments = tuple(departments)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [Problem(source, f"line {exc.lineno} column {exc.colno}", None, f"not valid JSON: {exc.msg}")]
    file_department = None
    if isinstance(data, dict):
        extra = sorted(set(data) - {"department", "items"})
        if extra:
            return [], [Problem(source, "top level", extra[0], "unknown key (expected 'department' and 'items')")]
        file_department = data.get("department")
        if file_department is not None and file_department not in departments:
            return [], [Problem(source, "top level", "department",
                                f"{file_department!r} is not a department in hotline.toml")]
        data = data.get("items")
    if not isinstance(data, list):
        return [], [Problem(source, "top level", "items", "expected a list of items")]
    items, problems = [], []
    for index, raw in enumerate(data, 1):
        where = f"item {index}"
        if not isinstance(raw, dict):
            problems.append(Problem(source, where, None, f"expected an object, not {type(raw).__name__}"))
            continue
        item, found = check_item(raw, file=source, where=where, departments=departments,
                                 default_department=file_department)
        problems.extend(found)
        if item is not None:
            items.append(item)
    return items, problems


def parse_csv(text: str, source: str, departments: Iterable[str]) -> tuple[list[KnowledgeItem], list[Problem]]:
    departments = tuple(departments)
    text = text.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    header_problems = []
    missing = [f for f in ("id", "department", "question", "answer", "keywords") if f not in header]
    if missing:
        header_problems.append(Problem(source, "row 1", missing[0], f"header lacks column(s) {', '.join(missing)}"))
    unknown = [f for f in header if f not in FIELDS]
    if unknown:
        header_problems.append(Problem(source, "row 1", unknown[0],
                                       f"unknown column(s) {', '.join(unknown)} (expected {', '.join(FIELDS)})"))
    if header_problems:
        return [], header_problems
    items, problems = [], []
    for row_number, row in enumerate(reader, 2):
        where = f"row {row_number}"
        if None in row:  # more cells than header columns
            problems.append(Problem(source, where, None, f"has {len(header) + len(row[None])} cells; "
                                                         f"the header has {len(header)}"))
            continue
        if all(not (value or "").strip() for value in row.values()):
            continue  # blank line at the end of a spreadsheet export
        raw = {k: v for k, v in row.items() if v is not None}
        item, found = check_item(raw, file=source, where=where, departments=departments)
        problems.extend(found)
        if item is not None:
            items.append(item)
    return items, problems


def read_file(path: Path, departments: Iterable[str]) -> tuple[list[KnowledgeItem], list[Problem]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(path.name, "file", None, f"cannot be read: {exc}")]
    if path.suffix == ".csv":
        return parse_csv(text, path.name, departments)
    if path.suffix == ".json":
        return parse_json(text, path.name, departments)
    return [], [Problem(path.name, "file", None, f"unknown format {path.suffix!r}; use .json or .csv")]


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and not p.name.startswith((".", "_")))
    return [path]


def check_collection(located: Sequence[tuple[KnowledgeItem, str]]) -> list[Problem]:
    """Checks across files: ids unique, at most one overview item per department,
    no question (standard or alternative) asked by two items."""
    problems = []
    first_seen: dict[str, str] = {}
    overview: dict[str, str] = {}
    asked_by: dict[str, str] = {}
    for item, source in located:
        for text in (item.question, *item.alternatives):
            other = asked_by.setdefault(question_key(text), item.id)
            if other != item.id:
                field = "question" if text == item.question else "alternatives"
                problems.append(Problem(source, "item", field, f"{text!r} is also asked by item {other}", item.id))
        if item.id in first_seen:
            problems.append(Problem(source, "item", "id", f"duplicate id; first defined in {first_seen[item.id]}",
                                    item.id))
        else:
            first_seen[item.id] = source
        if item.overview:
            if item.department in overview:
                problems.append(Problem(source, "item", "overview",
                                        f"department {item.department!r} already has overview item "
                                        f"{overview[item.department]}", item.id))
            else:
                overview[item.department] = item.id
    return problems


def load_items(path: str | Path | None = None, *, departments: Iterable[str] | None = None,
               settings: Settings | None = None) -> list[KnowledgeItem]:
    """Every item from a file or a directory of ``.json``/``.csv`` files, in file
    order. Raises :class:`KnowledgeFileError` listing all problems."""
    path = Path(path) if path is not None else knowledge_directory()
    if departments is None:
        departments = department_codes(settings)
    departments = tuple(departments)
    if not path.exists():
        raise KnowledgeFileError([Problem(str(path), "file", None, "does not exist")])
    files = _files(path)
    if not files:
        raise KnowledgeFileError([Problem(str(path), "directory", None, "holds no .json or .csv files")])
    located: list[tuple[KnowledgeItem, str]] = []
    problems: list[Problem] = []
    for file in files:
        items, found = read_file(file, departments)
        problems.extend(found)
        located.extend((item, file.name) for item in items)
    problems.extend(check_collection(located))
    if problems:
        raise KnowledgeFileError(problems)
    return [item for item, _ in located]


# ---------------------------------------------------------------- writing

def _json_item(item: KnowledgeItem) -> str:
    """One item in the files' style: one field per line, lists on one line."""
    fields = item.to_dict(with_department=False, compact=True)
    lines = [f"      {json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
             for k, v in fields.items()]
    return "    {\n" + ",\n".join(lines) + "\n    }"


def dumps_json(department: str, items: Sequence[KnowledgeItem]) -> str:
    wrong = [i.id for i in items if i.department != department]
    if wrong:
        raise ValueError(f"items {', '.join(wrong)} do not belong to {department}")
    body = ",\n".join(_json_item(item) for item in items)
    return (f'{{\n  "department": {json.dumps(department)},\n  "items": [\n{body}\n  ]\n}}\n')


def export_json(items: Iterable[KnowledgeItem], directory: str | Path) -> list[Path]:
    """One ``<department>.json`` per department, items in the given order."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    by_department: dict[str, list[KnowledgeItem]] = {}
    for item in items:
        by_department.setdefault(item.department, []).append(item)
    written = []
    for department, members in by_department.items():
        path = directory / f"{department}.json"
        path.write_text(dumps_json(department, members), encoding="utf-8")
        written.append(path)
    return written


def _csv_cell(item: KnowledgeItem, name: str) -> str:
    value: Any = getattr(item, name)
    if name in LIST_FIELDS:
        for entry in value:
            if LIST_SEPARATOR in entry:
                raise ValueError(f"{item.id}: {name} entry {entry!r} contains {LIST_SEPARATOR!r}")
        return LIST_SEPARATOR.join(value)
    if name in BOOL_FIELDS:
        return "true" if value else "false"
    return value


def dumps_csv(items: Iterable[KnowledgeItem]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for item in items:
        writer.writerow([_csv_cell(item, name) for name in FIELDS])
    return out.getvalue()


def export_csv(items: Iterable[KnowledgeItem], path: str | Path) -> Path:
    """All items in one CSV (UTF-8 with a byte-order mark, so spreadsheets show
    the Chinese text correctly)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\ufeff" + dumps_csv(items), encoding="utf-8", newline="")
    return path

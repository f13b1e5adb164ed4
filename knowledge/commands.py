"""``hotline knowledge ...``: what the knowledge-base editors run.

``check`` needs no database; the others work on the ``knowledge_items`` and
``unplaced_questions`` tables. Files are validated completely before anything
is written, and every problem names the file, row or item, and field."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections import Counter
from typing import TextIO

import asyncpg

from knowledge.files import KnowledgeFileError, export_csv, export_json, knowledge_directory, load_items
from knowledge.store import fetch_items, list_unplaced, replace_all, upsert_items
from hotline.settings import Settings


def run_knowledge(settings: Settings, command: str, path: str | None = None, *, replace: bool = False,
                  csv_file: str | None = None, limit: int = 100, out: TextIO | None = None,
                  err: TextIO | None = None) -> int:
    """Exit status: 0 done, 2 invalid files (each problem printed)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        if command == "check":
            items = load_items(path, settings=settings)
            counts = Counter(item.department for item in items)
            print(f"{len(items)} valid items in {path or knowledge_directory()}", file=out)
            for code in (d.code for d in settings.departments):
                print(f"  {code:18} {counts.get(code, 0):4}", file=out)
            return 0
        return asyncio.run(_with_database(settings, command, path, replace, csv_file, limit, out))
    except KnowledgeFileError as exc:
        print(str(exc), file=err)
        return 2


async def _with_database(settings: Settings, command: str, path: str | None, replace: bool,
                         csv_file: str | None, limit: int, out: TextIO) -> int:
    conn = await asyncpg.connect(settings.database.url)
    try:
        if command in ("import", "seed"):
            items = load_items(path, settings=settings)      # all problems before any write
            if command == "seed" or replace:
                result = await replace_all(conn, items)
                print(f"knowledge base replaced from {path or knowledge_directory()}: {result.inserted} new, "
                      f"{result.updated} changed, {result.unchanged} unchanged, {len(result.deleted)} deleted",
                      file=out)
            else:
                inserted, updated = await upsert_items(conn, items)
                print(f"imported {len(items)} items: {inserted} new, {updated} changed", file=out)
        elif command == "export":
            items = await fetch_items(conn)
            written = [export_csv(items, csv_file)] if csv_file else export_json(items, path or ".")
            print(f"exported {len(items)} items to {', '.join(str(p) for p in written)}", file=out)
        elif command == "unplaced":
            for question in await list_unplaced(conn, limit=limit):
                print(json.dumps(dataclasses.asdict(question), default=str, ensure_ascii=False), file=out)
        return 0
    finally:
        await conn.close()


def add_arguments(knowledge) -> None:
    """The ``knowledge`` sub-commands of the ``hotline`` command line."""
    sub = knowledge.add_subparsers(dest="knowledge_command", required=True)
    check = sub.add_parser("check", help="validate files without a database (default: config/knowledge)")
    check.add_argument("path", nargs="?")
    seed = sub.add_parser("seed", help="make the database hold exactly the files (default: config/knowledge)")
    seed.add_argument("path", nargs="?")
    imported = sub.add_parser("import", help="add or update items from a .json/.csv file or a folder")
    imported.add_argument("path")
    imported.add_argument("--replace", action="store_true", help="also delete items not in the files")
    export = sub.add_parser("export", help="write the database's items as JSON files per department, or CSV")
    export.add_argument("path", nargs="?", help="folder for the JSON files (default: .)")
    export.add_argument("--csv", dest="csv_file", help="one CSV file instead")
    unplaced = sub.add_parser("unplaced", help="questions the voice menu could not place (JSON lines)")
    unplaced.add_argument("--limit", type=int, default=100)


def run_from_args(settings: Settings, args) -> int:
    return run_knowledge(settings, args.knowledge_command, getattr(args, "path", None),
                         replace=getattr(args, "replace", False), csv_file=getattr(args, "csv_file", None),
                         limit=getattr(args, "limit", 100))

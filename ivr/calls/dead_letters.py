"""The rows PostgreSQL refused (``write_dead_letters``): list them, and replay
them once the cause is fixed (a migration widening a column, a corrected
payload, a constraint relaxed).

A replay submits each row again through a running call writer, with every
feature's sink registered, so it is written exactly as it would have been;
the dead letter is marked ``replayed_at``. A row refused again becomes a new
dead letter (with the new error), so nothing is lost either way.

    hotline dead-letters list [--all]
    hotline dead-letters replay [ID ...]      # none: every one not yet replayed

A payload can be corrected in SQL before replaying (it is the writer's JSON:
``{"calls": [[linkedid, {column: value}]], "timeline": [...], "rows": {sink: [...]}}``,
datetimes as ``{"$dt": "..."}``), e.g.
``UPDATE write_dead_letters SET payload = replace(payload, '1099511627776', '0') WHERE id = 7``.
"""

from __future__ import annotations

import argparse
import json
from typing import Sequence

import asyncpg

from hotline.logs import get_logger
from hotline.settings import Settings
from ivr.calls import store
from ivr.calls.backlog import decode_changes
from ivr.calls.writer import CallWriter

log = get_logger(__name__)


async def replay(pool: asyncpg.Pool, writer: CallWriter, ids: Sequence[int] | None = None,
                 timeout: float = 60.0) -> list[int]:
    """Submit the dead letters (``ids``, or all not yet replayed) again, wait
    until the writer has them, mark them replayed; returns their ids."""
    async with pool.acquire() as conn:
        letters = await store.dead_letters(conn, ids)
    done = []
    for letter in letters:
        try:
            changes = decode_changes(letter["payload"])
        except (ValueError, KeyError, TypeError, ImportError, AttributeError) as exc:
            log.error("dead_letters.undecodable", id=letter["id"], error=repr(exc))
            continue
        writer.submit(changes)
        done.append(letter["id"])
    await writer.flush(timeout)
    async with pool.acquire() as conn:
        await store.mark_replayed(conn, done)
    log.info("dead_letters.replayed", ids=done)
    return done


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="dead_letters_command", required=True)
    listing = commands.add_parser("list", help="dead letters not yet replayed, as JSON lines")
    listing.add_argument("--all", action="store_true", help="replayed ones too")
    again = commands.add_parser("replay", help="write them again")
    again.add_argument("ids", nargs="*", type=int)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from hotline.app import CORE, create_app

    if args.dead_letters_command == "list":
        conn = await asyncpg.connect(settings.database.url)
        try:
            for row in await store.dead_letters(conn, include_replayed=args.all):
                print(json.dumps(dict(row), ensure_ascii=False, default=str))
        finally:
            await conn.close()
        return 0
    # Every feature's sinks, on a web-only core with no HTTP site and no AMI.
    app = create_app(settings, bridge=False)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        core = app[CORE]
        done = await replay(core.pool, core.writer, args.ids or None)
        print(json.dumps({"replayed": done, "dead_lettered_again": core.writer.dead_lettered}))
    finally:
        await runner.cleanup()
    return 0

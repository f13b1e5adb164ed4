"""PostgreSQL access: the connection pool and the numbered SQL migrations.

Each feature keeps its migrations in its own ``migrations/`` folder; versions
are numbered across all of them (one sequence, checked for clashes), so the
order they are applied in never depends on which feature a file belongs to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import asyncpg

from hotline.logs import get_logger

_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK = 2512345

log = get_logger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(directories: Sequence[Path] | None = None) -> list[Migration]:
    """The migration files of every feature (or of ``directories``) in version
    order; a badly named file or a version used twice is an error, not skipped."""
    if directories is None:
        from hotline.features import migration_dirs

        directories = migration_dirs()
    found: dict[int, tuple[Path, Migration]] = {}
    for directory in directories:
        for path in sorted(directory.glob("*.sql")):
            match = _MIGRATION_NAME.match(path.name)
            if not match:
                raise ValueError(f"migration file {path} is not named NNN_name.sql")
            migration = Migration(int(match[1]), match[2], path.read_text(encoding="utf-8"))
            if migration.version in found:
                raise ValueError(f"migrations {found[migration.version][0]} and {path} "
                                 f"share version {migration.version}")
            found[migration.version] = (path, migration)
    return [found[v][1] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, directories: Sequence[Path] | None = None) -> list[int]:
    """Apply the migrations not yet recorded in ``schema_migrations``, each in its own
    transaction, under an advisory lock so several bridges can start at once.
    Returns the versions applied."""
    applied_now = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in load_migrations(directories):
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("db.migration_applied", version=migration.version, name=migration.name)
            applied_now.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def create_pool(url: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)

"""Shared fixtures: a real PostgreSQL, settings pointing at it, and paths."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import asyncpg
import pytest

from hotline.logs import configure_logging
from hotline.settings import Settings, load_settings
from tests.pg import create_migrated_database, postgres_server, with_database

FIXTURES = Path(__file__).parent / "fixtures"
ASTERISK_FIXTURES = FIXTURES / "asterisk"
TEMPLATE_DB = "hotline_template"
_db_numbers = itertools.count(1)

configure_logging("console")


@pytest.fixture(scope="session")
def postgres_server_url():
    """The URL of an admin database on a server the tests may create databases on."""
    with postgres_server() as (url, _cluster):
        yield url


@pytest.fixture(scope="session")
def migrated_template(postgres_server_url):
    """One migrated database, copied for each test (CREATE DATABASE ... TEMPLATE)."""
    asyncio.run(create_migrated_database(postgres_server_url, TEMPLATE_DB))
    return TEMPLATE_DB


@pytest.fixture
async def database_url(postgres_server_url, migrated_template):
    """A fresh, migrated database for one test; dropped afterwards."""
    name = f"hotline_test_{os.getpid()}_{next(_db_numbers)}"
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {migrated_template}")
    finally:
        await admin.close()
    yield with_database(postgres_server_url, name)
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def db(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Repository settings with fast timings and recordings in a temp dir."""
    base = load_settings(env={})
    return base.with_overrides(
        ami={"action_timeout": 2.0, "ping_interval": 0.5, "ping_timeout": 0.5,
             "reconnect_min": 0.05, "reconnect_max": 0.5, "secret": "s3cret"},
        calls={"flush_interval": 0.02},
        recordings={"local_dir": str(tmp_path / "monitor"), "settle_seconds": 0.0,
                    "missing_retries": 1},
        # Asterisk's own records (queue_log, Master.csv): in the test's folder, absent until a test writes them.
        reconcile={"queue_log": str(tmp_path / "asterisk-logs" / "queue_log"),
                   "cdr_csv": str(tmp_path / "asterisk-logs" / "cdr-csv" / "Master.csv")},
    )


@pytest.fixture
def web_settings(settings) -> Settings:
    """Settings for the pages' tests: argon2 at its cheapest."""
    from tests.web_harness import fast

    return fast(settings)


@pytest.fixture
async def web_server(web_settings, db):
    """The whole application (no AMI bridge) on a TCP port, for logged-in clients and browsers."""
    from aiohttp.test_utils import TestServer

    from hotline.app import create_app

    async with TestServer(create_app(web_settings, bridge=False, pool=db)) as server:
        yield server

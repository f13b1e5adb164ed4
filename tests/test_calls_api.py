"""/api/calls pages with a key, and the API's database connections are its
own: bounded, with a statement timeout, never the call writer's."""

from datetime import datetime, timedelta, timezone

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import CORE, create_app
from hotline.auth import tokens
from hotline.auth.roles import Role
from hotline.facts import ChangeSet, TimelineEntry
from tests.bridge_harness import running

AT = datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc)


async def supervisor(pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        _, token = await tokens.create(conn, "test supervisor", Role.SUPERVISOR, "test")
    return {"Authorization": f"Bearer {token}"}


async def test_calls_are_paged_newest_first_with_the_next_key_and_none_is_skipped_or_repeated(settings, db):
    # 11 calls, several started at the same microsecond: the linkedid breaks the tie.
    started = [AT + timedelta(seconds=s) for s in (0, 1, 1, 1, 2, 3, 3, 4, 5, 5, 6)]
    async with db.acquire() as conn:
        await conn.executemany("INSERT INTO calls (linkedid, started_at) VALUES ($1, $2)",
                               [(f"1795313800.{i}", at) for i, at in enumerate(started)])
        expected = [r["linkedid"] for r in await conn.fetch(
            "SELECT linkedid FROM calls ORDER BY started_at DESC, linkedid DESC")]
    app = create_app(settings, bridge=False, pool=db)
    async with TestClient(TestServer(app)) as client:
        auth = await supervisor(db)
        seen, pages, url = [], 0, "/api/calls?limit=3"
        while url:
            body = await (await client.get(url, headers=auth)).json()
            seen += [c["linkedid"] for c in body["calls"]]
            pages += 1
            url = f"/api/calls?limit=3&before={body['next']}" if body["next"] else None
        assert seen == expected and pages == 4
        # The key as a client may send it: with an offset whose '+' was not escaped.
        first = (await (await client.get("/api/calls?limit=1", headers=auth)).json())["calls"][0]
        stamp = datetime.fromisoformat(first["started_at"]).astimezone(timezone(timedelta(hours=8)))
        after = await client.get(f"/api/calls?limit=2&before={stamp.isoformat()},{first['linkedid']}", headers=auth)
        assert [c["linkedid"] for c in (await after.json())["calls"]] == expected[1:3]
        for bad in ("yesterday,1.2", "2026-11-22T02:00:00,1.2", "2026-11-22T02:00:00Z", "x" * 300):
            response = await client.get(f"/api/calls?limit=2&before={bad}", headers=auth)
            assert response.status == 400 and "before" in (await response.json())["error"]


async def test_the_api_cannot_take_the_writers_or_the_features_connections_and_its_statements_time_out(
        settings, database_url):
    settings = settings.with_overrides(database={"url": database_url, "api_pool_max": 2,
                                                 "statement_timeout": 0.3})
    app = create_app(settings, bridge=False)
    async with running(app) as core:
        held = [await core.api_pool.acquire() for _ in range(2)]    # the API's pool, all of it
        try:
            assert await held[0].fetchval("SHOW statement_timeout") == "300ms"
            with pytest.raises(asyncpg.QueryCanceledError):
                await held[0].execute("SELECT pg_sleep(2)")
            core.writer.submit(ChangeSet(timeline=[TimelineEntry("2.1", None, AT, "menu.key", {}, "own-pool")]))
            await core.writer.flush(timeout=3)                      # still writes
            async with core.pool.acquire(timeout=1) as conn:          # the features still query
                assert await conn.fetchval("SHOW statement_timeout") == "0"
            healthy, report = await core.health.report()              # a busy API is not unhealthy
            assert healthy is True and report["api_pool"]["idle"] == 0
        finally:
            for conn in held:
                await core.api_pool.release(conn)
        async with core.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM call_events WHERE dedupe_key = 'own-pool'") == 1
            names = await conn.fetch("SELECT DISTINCT application_name FROM pg_stat_activity "
                                     "WHERE datname = current_database()")
        assert {"hotline", "hotline-api", "hotline-writer", "hotline-listen"} <= {r["application_name"] for r in names}
    assert app[CORE].writer.backlog == 0

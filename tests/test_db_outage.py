"""The whole service while PostgreSQL is read-only (as a standby after a
failover): /healthz says so, nothing submitted is lost, writing resumes, and a
recording registered meanwhile is stored when the database is back. The core
opens its own pools from the settings here (no pool handed in)."""

import asyncio
import logging
import shutil
import time
from datetime import datetime, timezone

from aiohttp.test_utils import TestClient, TestServer

from hotline.app import CORE, create_app
from hotline.facts import CallFacts, ChangeSet, Committed, RecordingFinished, TimelineEntry
from tests.bridge_harness import RECORDED_MONITOR, eventually, running
from tests.standin import AmiStandIn
from tests.test_call_writer import admin_of, read_only, rows

AT = datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc)


def own_pools(settings, database_url, tmp_path):
    return settings.with_overrides(database={"url": database_url, "pool_max": 3},
                                   calls={"spill_dir": str(tmp_path / "spill"), "retry_max": 0.2})


async def test_health_is_503_while_the_database_is_read_only_and_nothing_is_lost(
        settings, database_url, postgres_server_url, tmp_path, db):
    settings = own_pools(settings, database_url, tmp_path)
    submitted = 0
    stop = asyncio.Event()

    async def stream(writer) -> None:
        nonlocal submitted
        while not stop.is_set():
            writer.submit(ChangeSet(timeline=[TimelineEntry(f"8.{submitted % 9}", None, AT, "menu.key",
                                                            {"n": submitted}, f"out-{submitted}")]))
            submitted += 1
            await asyncio.sleep(0.005)

    async def status(client) -> tuple[int, dict]:
        response = await client.get("/healthz")
        return response.status, await response.json()

    async with AmiStandIn([]) as server:
        app = create_app(settings.with_overrides(ami={"port": server.port}))
        async with TestClient(TestServer(app)) as client, admin_of(postgres_server_url, database_url) as (admin, name):
            core = app[CORE]
            await core.ami.wait_logged_in(timeout=5)
            assert (await status(client))[0] == 200
            streaming = asyncio.create_task(stream(core.writer))
            await asyncio.sleep(0.3)
            await read_only(admin, name, True)

            async def unhealthy():
                code, report = await status(client)
                return report if code == 503 else None
            report = await eventually(unhealthy, 5, "/healthz to fail")
            assert report["database_writable"] is False
            await asyncio.sleep(1.0)                      # still streaming, still read-only
            code, report = await status(client)
            assert code == 503 and report["writer_writing"] is False
            assert report["write_backlog"] > 0 and "ReadOnly" in report["writer"]["last_error"]
            await read_only(admin, name, False)

            async def healthy():
                code, report = await status(client)
                return report if code == 200 else None
            report = await eventually(healthy, 5, "/healthz to recover")
            assert report["database_writable"] is True and report["writer_writing"] is True
            stop.set()
            await streaming
            await core.writer.flush(timeout=10)
    assert submitted > 200
    assert await rows(db, "SELECT count(*) FROM call_events WHERE dedupe_key LIKE 'out-%'") == submitted
    assert await rows(db, "SELECT count(*) FROM write_dead_letters") == 0


async def test_a_recording_registered_while_the_database_is_read_only_is_stored_when_it_returns(
        settings, database_url, postgres_server_url, tmp_path, db, caplog):
    caplog.set_level(logging.WARNING)
    settings = own_pools(settings, database_url, tmp_path)
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    shutil.copy(RECORDED_MONITOR / "2026/11/22/1795313795.0.wav", monitor / "8.1.wav")
    app = create_app(settings, bridge=False)
    async with running(app) as core, admin_of(postgres_server_url, database_url) as (admin, name):
        core.writer.submit(ChangeSet(calls=[CallFacts("8.1", {"started_at": AT})]))
        await core.writer.flush()
        await read_only(admin, name, True)
        core.hub.publish(Committed(timeline=[], committed_at=time.time(), origin=core.hub.origin,
                                   recordings=[RecordingFinished("8.1", "8.1", f"{settings.recordings.asterisk_dir}/8.1.wav")]))
        await asyncio.sleep(1.0)
        await read_only(admin, name, False)
        await core.settle(timeout=10)
    async with db.acquire() as conn:
        stored = await conn.fetchrow("SELECT status, bytes, sha256 FROM recordings WHERE linkedid = '8.1'")
    assert stored is not None and stored["status"] == "ok" and stored["bytes"] > 44
    assert "Task exception was never retrieved" not in caplog.text

"""The batched writer against a real PostgreSQL: lost connections, rejected
rows, a read-only database, a backlog too large for memory."""

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

from hotline.facts import CallFacts, ChangeSet, TimelineEntry
from ivr.calls.dead_letters import replay
from ivr.calls.writer import CallWriter

AT = datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc)


def entry(linkedid: str, key: str) -> TimelineEntry:
    return TimelineEntry(linkedid, linkedid, AT, "menu.key", {"key": "3"}, key)


async def rows(db, sql):
    async with db.acquire() as conn:
        return await conn.fetchval(sql)


@dataclass(frozen=True)
class Probe:
    """A feature's sink row: ``n`` in submission order, ``ok`` checked by the table."""

    n: int
    ok: bool = True


async def write_probes(conn: asyncpg.Connection, probes) -> None:
    await conn.execute("INSERT INTO probe (n, ok) SELECT * FROM unnest($1::int[], $2::bool[])",
                       [p.n for p in probes], [p.ok for p in probes])


async def make_probe_table(db) -> None:
    async with db.acquire() as conn:
        await conn.execute("CREATE TABLE probe (id bigserial PRIMARY KEY, n integer NOT NULL, "
                           "ok boolean NOT NULL CHECK (ok))")


@asynccontextmanager
async def admin_of(postgres_server_url: str, database_url: str):
    """(admin connection, database name): the admin connection is to another database."""
    admin = await asyncpg.connect(postgres_server_url)
    try:
        yield admin, database_url.rsplit("/", 1)[1]
    finally:
        await admin.close()


async def read_only(admin: asyncpg.Connection, name: str, on: bool) -> None:
    """As a standby after a failover looks to its clients: every new session is
    read-only, and the sessions that were open are gone."""
    if on:
        await admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
    else:
        await admin.execute(f"ALTER DATABASE {name} RESET default_transaction_read_only")


async def test_timeline_for_an_unseen_call_creates_the_call(settings, db):
    writer = CallWriter(settings.calls)
    writer.start(db)
    writer.submit(ChangeSet(timeline=[entry("9.9", "k1")]))
    await writer.flush()
    await writer.close()
    assert await rows(db, "SELECT count(*) FROM calls WHERE linkedid = '9.9'") == 1
    assert await rows(db, "SELECT count(*) FROM call_events") == 1


async def test_connections_killed_mid_run_are_retried_without_loss(settings, db):
    writer = CallWriter(replace(settings.calls, flush_interval=0.01))
    writer.start(db)
    writer.submit(ChangeSet(timeline=[entry("1.1", "a")]))
    await writer.flush()
    async with db.acquire() as conn:  # every other connection of the pool dies
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    writer.submit(ChangeSet(timeline=[entry("1.1", "b"), entry("2.2", "c")]))
    await writer.flush(timeout=20)
    await writer.close()
    assert await rows(db, "SELECT count(*) FROM call_events") == 3


async def test_rejected_rows_go_to_the_dead_letter_table_and_the_rest_of_their_batch_is_written(
        settings, db, caplog):
    caplog.set_level(logging.WARNING)
    await make_probe_table(db)
    writer = CallWriter(settings.calls)
    writer.add_sink("probe", write_probes)
    writer.start(db)
    good = [entry(f"5.{i}", f"good-{i}") for i in range(40)]
    writer.submit(ChangeSet(timeline=good[:20], rows={"probe": [Probe(1)]}))
    # Refused by asyncpg before sending (int4 range), by PostgreSQL (NUL in text:
    # 22021), and by a CHECK constraint (23514), all in the one batch.
    writer.submit(ChangeSet(calls=[CallFacts("3.3", {"started_at": AT, "hold_seconds": 2**40})]))
    writer.submit(ChangeSet(calls=[CallFacts("3.4", {"started_at": AT, "caller_name": "王\x00"})],
                            rows={"probe": [Probe(2, ok=False)]}))
    writer.submit(ChangeSet(timeline=good[20:], rows={"probe": [Probe(3)]}))
    await writer.flush()
    writer.submit(ChangeSet(timeline=[entry("4.4", "d")]))    # and later batches still land
    await writer.flush()
    await writer.close()

    assert await rows(db, "SELECT count(*) FROM call_events WHERE dedupe_key LIKE 'good-%'") == 40
    assert await rows(db, "SELECT count(*) FROM call_events WHERE linkedid = '4.4'") == 1
    assert await rows(db, "SELECT array_agg(n ORDER BY id) FROM probe") == [1, 3]
    async with db.acquire() as conn:
        letters = await conn.fetch("SELECT * FROM write_dead_letters ORDER BY id")
    assert [(r["kind"], r["sink"], r["linkedid"]) for r in letters] == [
        ("call", None, "3.3"), ("call", None, "3.4"), ("sink", "probe", None)]
    assert "int32" in letters[0]["error"]
    assert [r["sqlstate"] for r in letters] == ["22000", "22021", "23514"]
    assert json.loads(letters[0]["payload"])["calls"][0][1]["hold_seconds"] == 2**40
    assert writer.dead_lettered == 3
    assert "writer.batch_rejected" in caplog.text and caplog.text.count("writer.row_dead_lettered") == 3


async def test_a_dead_letter_is_replayed_once_its_cause_is_fixed(settings, db):
    await make_probe_table(db)
    writer = CallWriter(settings.calls)
    writer.add_sink("probe", write_probes)
    writer.start(db)
    writer.submit(ChangeSet(rows={"probe": [Probe(7, ok=False)]}))
    await writer.flush()
    async with db.acquire() as conn:
        await conn.execute("ALTER TABLE probe DROP CONSTRAINT probe_ok_check")   # the fix
    assert len(await replay(db, writer)) == 1
    await writer.close()
    assert await rows(db, "SELECT array_agg(n) FROM probe WHERE NOT ok") == [7]
    assert await rows(db, "SELECT count(*) FROM write_dead_letters WHERE replayed_at IS NULL") == 0


async def test_a_read_only_database_loses_nothing_and_writing_resumes(
        settings, db, database_url, postgres_server_url, caplog):
    caplog.set_level(logging.ERROR)
    writer = CallWriter(replace(settings.calls, retry_max=0.2))
    writer.start(db)
    async with admin_of(postgres_server_url, database_url) as (admin, name):
        for i in range(50):
            writer.submit(ChangeSet(timeline=[entry(f"6.{i % 7}", f"ro-{i}")]))
            await asyncio.sleep(0.01)
            if i == 10:
                await read_only(admin, name, True)
            if i == 40:
                assert writer.failing and writer.backlog > 0 and "ReadOnlySQLTransaction" in writer.last_error
                await read_only(admin, name, False)
        await writer.flush(timeout=20)
    await writer.close()
    assert await rows(db, "SELECT count(*) FROM call_events WHERE dedupe_key LIKE 'ro-%'") == 50
    assert await rows(db, "SELECT count(*) FROM write_dead_letters") == 0
    assert "writer.retrying" in caplog.text


async def test_a_backlog_past_max_is_spilled_to_disk_and_written_in_order(
        settings, db, database_url, postgres_server_url, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    await make_probe_table(db)
    spill_dir = tmp_path / "spill"
    writer = CallWriter(replace(settings.calls, max_backlog=50, spill_dir=str(spill_dir), retry_max=0.2))
    writer.add_sink("probe", write_probes)
    writer.start(db)
    async with admin_of(postgres_server_url, database_url) as (admin, name):
        await read_only(admin, name, True)
        peak = 0
        for n in range(400):
            writer.submit(ChangeSet(timeline=[entry(f"7.{n % 5}", f"sp-{n}")], rows={"probe": [Probe(n)]}))
            peak = max(peak, writer.backlog)
            if n % 50 == 0:
                await asyncio.sleep(0.05)
        assert peak <= 50
        assert writer.spilled >= 700
        assert [p.name for p in spill_dir.iterdir()] == [Path(writer.status()["spill_files"][0]).name]
        await read_only(admin, name, False)
        await writer.flush(timeout=20)
    await writer.close()
    assert await rows(db, "SELECT array_agg(n ORDER BY id) FROM probe") == list(range(400))
    assert await rows(db, "SELECT count(*) FROM call_events WHERE dedupe_key LIKE 'sp-%'") == 400
    assert writer.spilled == 0 and list(spill_dir.iterdir()) == []
    assert "writer.spilling" in caplog.text and "writer.spill_drained" in caplog.text


async def test_what_a_writer_closed_during_an_outage_holds_is_written_by_the_next_one(
        settings, db, database_url, postgres_server_url, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    await make_probe_table(db)
    calls = replace(settings.calls, max_backlog=20, spill_dir=str(tmp_path / "spill"), retry_max=0.2)
    first = CallWriter(calls)
    first.add_sink("probe", write_probes)
    first.start(db)
    async with admin_of(postgres_server_url, database_url) as (admin, name):
        await read_only(admin, name, True)
        for n in range(60):                 # 20 in memory, 40 spilled
            first.submit(ChangeSet(rows={"probe": [Probe(n)]}))
        await asyncio.sleep(0.3)
        await first.close(timeout=0.5)
        assert "writer.closed_with_backlog" in caplog.text
        assert len(list((tmp_path / "spill").glob("spill-*.jsonl"))) == 2
        await read_only(admin, name, False)
    second = CallWriter(calls)
    second.add_sink("probe", write_probes)
    second.start(db)
    second.submit(ChangeSet(rows={"probe": [Probe(60)]}))    # after the first writer's rows
    await second.flush(timeout=20)
    await second.close()
    assert await rows(db, "SELECT array_agg(n ORDER BY id) FROM probe") == list(range(61))
    assert list((tmp_path / "spill").glob("spill-*.jsonl")) == []

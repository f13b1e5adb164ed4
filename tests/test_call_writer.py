"""The batched writer against a real PostgreSQL: lost connections, bad rows."""

import logging
from dataclasses import replace
from datetime import datetime, timezone

from hotline.facts import CallFacts, ChangeSet, TimelineEntry
from ivr.calls.writer import CallWriter

AT = datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc)


def entry(linkedid: str, key: str) -> TimelineEntry:
    return TimelineEntry(linkedid, linkedid, AT, "menu.key", {"key": "3"}, key)


async def rows(db, sql):
    async with db.acquire() as conn:
        return await conn.fetchval(sql)


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


async def test_rejected_batch_is_logged_and_later_batches_still_land(settings, db, caplog):
    caplog.set_level(logging.ERROR)
    writer = CallWriter(settings.calls)
    writer.start(db)
    writer.submit(ChangeSet(calls=[CallFacts("3.3", {"started_at": AT, "hold_seconds": 2**40})]))
    await writer.flush()
    writer.submit(ChangeSet(timeline=[entry("4.4", "d")]))
    await writer.flush()
    await writer.close()
    assert "writer.batch_rejected" in caplog.text and "3.3" in caplog.text
    assert await rows(db, "SELECT count(*) FROM call_events WHERE linkedid = '4.4'") == 1

"""Calls while the bridge was down (issue 9, item 4), over the stand-in and a real
PostgreSQL, with what a real Asterisk 22 wrote down itself (tests/fixtures/asterisk/e2e/,
E10–E11): cdr-csv's Master.csv, queue_log and the MixMonitor file.

E10: a whole call happened while `hotline serve` was down; only an independent AMI
session (the tap) saw it, and the next serve's CoreShowChannels was empty. The tap is
what Asterisk did; the files are what it persisted; the bridge must end up with the
call the live tracker would have made of the tap."""

from __future__ import annotations

import logging
import os
import wave
from datetime import datetime, timezone
from pathlib import Path

from hotline.settings import Settings
from ivr.ami.message import normalize
from ivr.calls import store
from ivr.calls.tracker import CallTracker
from tests.bridge_harness import (QUEUE_ADD_8006, bridge_on, call_row, ended_call, eventually, timeline_detail,
                                  timeline_kinds)
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AmiStandIn, Transcript, expect_of
from tests.standin.framing import parse_message
from tests.standin.recorded import in_messages

E2E = ASTERISK_FIXTURES / "e2e"
DOWN_CALL = "1796177237.6"          # E10: started and ended while serve was down
SIGTERM_CALL = "1796177179.5"       # E8/E9: started while serve was down, ended after its restart
# What only the live AMI events carry: the files have no number dialled (the CDR says `s`),
# no hangup cause, and this call never reached the menu.
NOT_IN_ASTERISK_FILES = {"dialed_number", "hangup_cause", "hangup_cause_text", "menu_started_at"}


def tap_events(name: str) -> list[dict]:
    """Every event the tap (an independent AMI session) received, normalised."""
    transcript = Transcript.load(E2E / f"{name}-tap.jsonl")
    return [normalize(parse_message(raw)) for raw in in_messages(transcript) if raw.startswith("Event:")]


def event(events: list[dict], name: str, **match: str) -> dict:
    return next(e for e in events if e["event"] == name and all(e.get(k) == v for k, v in match.items()))


def at(e: dict) -> datetime:
    return datetime.fromtimestamp(float(e["timestamp"]), tz=timezone.utc)


def queue_log_lines() -> list[str]:
    """The queue_log lines Asterisk wrote during the capture (its timeline lists them)."""
    text = (E2E / "call-while-bridge-down.timeline.txt").read_text(encoding="utf-8")
    block = text.split("queue_log lines added:\n", 1)[1]
    found = []
    for line in block.splitlines():
        if not line.startswith("    "):
            break
        found.append(line.strip())
    return found


def local(settings: Settings, asterisk_path: str) -> Path:
    return Path(settings.recordings.local_dir) / Path(asterisk_path).relative_to(settings.recordings.asterisk_dir)


def write_recording(path: Path, seconds: float, written_at: float) -> None:
    """A MixMonitor WAV (8 kHz mono s16) of that length, last written at ``written_at``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * int(8000 * seconds))
    os.utime(path, (written_at, written_at))


def asterisk_wrote(settings: Settings, queue_log: list[bytes], cdr: list[bytes]) -> None:
    for target, lines in ((settings.reconcile.queue_log, queue_log), (settings.reconcile.cdr_csv, cdr)):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with open(target, "ab") as handle:
            handle.write(b"".join(line + b"\n" for line in lines))


def e10_files(settings: Settings) -> str:
    """Master.csv, queue_log and the recording as Asterisk left them after E10;
    returns the recording's path as Asterisk named it."""
    cdr = (E2E / "call-while-bridge-down.cdr-master.csv").read_bytes().splitlines()
    asterisk_wrote(settings, [line.encode() for line in queue_log_lines()], cdr)
    events = tap_events("call-while-bridge-down")
    path = event(events, "VarSet", variable="MIXMONITOR_FILENAME")["value"]
    # E11(c): the file is 128044 bytes: 8 s of 8 kHz 16-bit audio after the 44-byte header.
    write_recording(local(settings, path), 8.0, at(event(events, "Hangup")).timestamp())
    return path


def live_facts(events: list[dict], linkedid: str, settings: Settings) -> dict:
    """What the live tracker makes of the call's events, merged as the store merges them."""
    tracker = CallTracker({d.queue: d.code for d in settings.departments})
    now = datetime.now(timezone.utc)
    facts = [f for e in events for f in tracker.apply(e, now).calls if f.linkedid == linkedid]
    (merged,) = store.merge_calls(facts, now)
    return merged


async def count(db, table: str) -> int:
    async with db.acquire() as conn:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")


async def counts(db) -> dict[str, int]:
    return {t: await count(db, t) for t in ("calls", "call_events", "recordings")}


async def recording_of(db, linkedid: str):
    async with db.acquire() as conn:
        return await conn.fetch("SELECT * FROM recordings WHERE linkedid = $1", linkedid)


def serve_after_e10() -> AmiStandIn:
    """The serve that started 7 s after E10's hangup: its own AMI session (conn 1)."""
    return AmiStandIn([Transcript.load(E2E / "call-while-bridge-down.jsonl").connection(1)])


def assert_loses_nothing(row, live: dict) -> None:
    for column, value in live.items():
        if column in NOT_IN_ASTERISK_FILES or column == "linkedid":
            continue
        if isinstance(value, datetime):
            assert abs((row[column] - value).total_seconds()) < 1, column   # the files count whole seconds
        else:
            assert row[column] == value, column


async def test_a_bridge_down_for_a_whole_call_loses_nothing(settings, db):
    """E10: the call is made from Master.csv, queue_log and the recording, with every
    fact the live tracker would have drawn from the tap's events (times to the
    second), marked as reconciled, with its timeline rows and its recording."""
    path = e10_files(settings)
    events = tap_events("call-while-bridge-down")
    async with serve_after_e10() as server:
        async with bridge_on(server, settings, db) as core:
            await core.settle()
    row = await call_row(db, DOWN_CALL)
    assert row is not None, "the call that happened while the bridge was down is missing"
    live = live_facts(events, DOWN_CALL, settings)
    assert live["recording_path"] == path and live["hold_seconds"] == 8 and live["queue"] == "general_queue"
    assert_loses_nothing(row, live)
    assert row["outcome"] == "abandoned" and row["department"] == "general"
    assert row["hold_seconds"] == int(event(events, "QueueCallerAbandon")["holdtime"])
    assert row["reconciled_from"] == "cdr_csv,queue_log,recording"
    assert row["lost_at"] is None
    reconciled = await timeline_detail(db, DOWN_CALL, "call.reconciled")
    assert sorted(r["source"] for r in reconciled) == ["cdr_csv", "queue_log", "recording"]
    by_source = {r["source"]: r for r in reconciled}
    assert [e[1] for e in by_source["queue_log"]["entries"]] == ["ENTERQUEUE", "ABANDON"]
    assert by_source["cdr_csv"]["records"][0]["disposition"] == "ANSWERED"
    assert await timeline_kinds(db, DOWN_CALL) == ["call.reconciled"] * 3
    (recording,) = await recording_of(db, DOWN_CALL)
    assert recording["asterisk_path"] == path and recording["status"] == "ok"
    assert recording["bytes"] == 128044 and float(recording["duration_seconds"]) == 8.0
    # The other call in the queue_log excerpt (E8/E9's, abandoned after its rescue) was
    # not seen by this serve either: it is there too, from the file alone.
    other = await call_row(db, SIGTERM_CALL)
    assert other["outcome"] == "abandoned" and other["hold_seconds"] == 13
    assert other["reconciled_from"] == "queue_log"


async def test_reading_again_adds_nothing(settings, db):
    """A run after a reconnect, a restarted service, and even a forgotten reading
    position (every line read again) leave the database as it was."""
    e10_files(settings)
    async with serve_after_e10() as server:
        async with bridge_on(server, settings, db) as core:
            await core.settle()
    first = await counts(db)
    assert first["calls"] == 2 and first["recordings"] == 1
    async with db.acquire() as conn:
        positions = await conn.fetch("SELECT source, lines_read, lines_skipped FROM asterisk_log_positions")
    assert {(p["source"], p["lines_read"], p["lines_skipped"]) for p in positions} == {
        ("queue_log", 4, 0), ("cdr_csv", 1, 0)}
    async with AmiStandIn([]) as server:           # the service started again
        async with bridge_on(server, settings, db) as core:
            await core.settle()
            assert await counts(db) == first
            async with db.acquire() as conn:
                await conn.execute("DELETE FROM asterisk_log_positions")
            await server.drop()                    # a reconnect: its login runs the catch-up again
            await eventually(lambda: _true(core.ami.logins == 2 and core.ami.logged_in), 10, "a second login")
            await core.settle()
    assert await counts(db) == first
    async with db.acquire() as conn:
        again = await conn.fetchval("SELECT sum(lines_read) FROM asterisk_log_positions")
    assert again == 5                              # every line was read again, and nothing came of it
    row = await call_row(db, DOWN_CALL)
    assert row["reconciled_from"] == "cdr_csv,queue_log,recording" and row["outcome"] == "abandoned"


async def _true(value):
    return value


async def test_garbage_lines_are_logged_and_skipped_and_the_rest_is_read(settings, db, caplog):
    cdr = (E2E / "call-while-bridge-down.cdr-master.csv").read_bytes().splitlines()
    queue = [line.encode() for line in queue_log_lines()]
    noisy_queue = [b"this is not a queue_log line", queue[0], queue[1], b"\x00" * 40, queue[2],
                   b"1796177245|1796177237.6|general_queue|NONE|ABAN\xffDON|1|1|8", queue[3]]
    noisy_cdr = [b'"","13800138000","s","hotline","unterminated', *cdr, b"2026-12-02,nothing,else"]
    asterisk_wrote(settings, noisy_queue, noisy_cdr)
    caplog.set_level(logging.WARNING)
    async with serve_after_e10() as server:
        async with bridge_on(server, settings, db) as core:
            await core.settle()
    bad = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "reconcile.bad_line"]
    def offsets(lines: list[bytes], garbage: list[bytes]) -> list[int]:
        return [sum(len(line) + 1 for line in lines[:lines.index(g)]) for g in garbage]
    assert sorted((b["source"], b["offset"]) for b in bad) == sorted(
        [("queue_log", o) for o in offsets(noisy_queue, [noisy_queue[0], noisy_queue[3], noisy_queue[5]])]
        + [("cdr_csv", o) for o in offsets(noisy_cdr, [noisy_cdr[0], noisy_cdr[-1]])])
    assert all(b["reason"] for b in bad)
    row = await call_row(db, DOWN_CALL)
    assert row["outcome"] == "abandoned" and row["hold_seconds"] == 8 and row["queue"] == "general_queue"
    assert row["reconciled_from"] == "cdr_csv,queue_log" and row["ended_at"] is not None
    async with db.acquire() as conn:
        skipped = dict(await conn.fetch("SELECT source, lines_skipped FROM asterisk_log_positions"))
    assert skipped == {"queue_log": 3, "cdr_csv": 2}


async def test_the_recording_of_a_call_spanning_a_restart_is_registered(settings, db):
    """E8/E9: the call began while serve was down, so the new serve knew it only from
    CoreShowChannels (which does not say what a channel records): its recording was
    never registered. The next start finds the file (named after the call's
    Uniqueid) with no row and registers it; a file of a call nobody knows of,
    written a moment ago, waits (its call may still be going on)."""
    path = f"{settings.recordings.asterisk_dir}/2026/12/02/{SIGTERM_CALL}.wav"
    now = datetime.now(timezone.utc).timestamp()
    write_recording(local(settings, path), 31.0, now)       # still being recorded while the call goes on
    recent = f"{settings.recordings.asterisk_dir}/2026/12/02/1796190000.1.wav"
    write_recording(local(settings, recent), 1.0, now)
    second_life = Transcript.load(E2E / "serve-sigterm-heartbeat.jsonl").connection(2)
    async with AmiStandIn([second_life]) as server:
        async with bridge_on(server, settings, db) as core:
            call = await ended_call(db, SIGTERM_CALL, timeout=15)
            await core.settle()
    assert call["recording_path"] is None and call["outcome"] == "abandoned"
    assert await recording_of(db, SIGTERM_CALL) == []      # the resync could not know the file
    hung_up = datetime(2026, 12, 2, 2, 6, 50, 990000, tzinfo=timezone.utc).timestamp()   # timeline.txt
    os.utime(local(settings, path), (hung_up, hung_up))     # MixMonitor's last write, at the hangup
    async with AmiStandIn([]) as server:                   # the service starts again
        async with bridge_on(server, settings, db) as core:
            await core.settle()
    (recording,) = await recording_of(db, SIGTERM_CALL)
    assert recording["asterisk_path"] == path and recording["status"] == "ok"
    assert float(recording["duration_seconds"]) == 31.0
    row = await call_row(db, SIGTERM_CALL)
    assert row["recording_path"] == path and row["reconciled_from"] == "recording"
    assert row["outcome"] == "abandoned" and row["lost_at"] is None
    assert await recording_of(db, "1796190000.1") == [] and await call_row(db, "1796190000.1") is None


async def test_a_recording_with_no_call_at_all_gets_a_call_that_ended_unseen(settings, db):
    """A file in the monitor folder of a call no record mentions (Master.csv and
    queue_log absent here) is registered, under a call made from its name."""
    path = f"{settings.recordings.asterisk_dir}/2026/11/22/1795313857.8.wav"
    write_recording(local(settings, path), 3.0, datetime(2026, 11, 22, 2, 17, 40, tzinfo=timezone.utc).timestamp())
    async with AmiStandIn([]) as server:
        async with bridge_on(server, settings, db) as core:
            await core.settle()
    row = await call_row(db, "1795313857.8")
    assert row["started_at"] == datetime(2026, 11, 22, 2, 17, 37, tzinfo=timezone.utc)
    assert row["outcome"] == "lost" and row["reconciled_from"] == "recording" and row["recording_path"] == path
    (recording,) = await recording_of(db, "1795313857.8")
    assert recording["status"] == "ok"
    (made,) = await timeline_detail(db, "1795313857.8", "call.reconciled")
    assert made["made"] is True and made["paths"] == [path]


def logged_lines(name: str, uniqueid: str) -> list[bytes]:
    """The lines of the first capture run's queue_log or Master.csv about one call."""
    return [line for line in (ASTERISK_FIXTURES / "logs" / name).read_bytes().splitlines()
            if uniqueid.encode() in line]


async def test_a_call_seen_live_is_not_overwritten_but_a_missed_end_is_completed(settings, db):
    """Capture 3's call, seen whole, keeps every fact and its timeline when its
    queue_log and CDR lines are read afterwards. Capture 5's call, cut off from the
    bridge after the agent answered and closed as lost, gets the end and the talk
    time the bridge missed, and keeps its own (sub-second) start."""
    abandoned = "1795313813.2"
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    live_only = transcript.connection(1).until(expect_of("Logoff"))
    async with AmiStandIn([live_only[: len(live_only) - 1]]) as server:
        async with bridge_on(server, settings, db) as core:
            await ended_call(db, abandoned)
            await core.settle()
            seen = await call_row(db, abandoned)
            timeline = await timeline_kinds(db, abandoned)
            asterisk_wrote(settings, logged_lines("queue_log", abandoned), logged_lines("cdr-Master.csv", abandoned))
            await server.drop()
            await eventually(lambda: _true(core.ami.logins == 2 and core.ami.logged_in), 10, "a second login")
            await core.settle()
    assert dict(await call_row(db, abandoned)) == dict(seen)
    assert seen["reconciled_from"] is None and await timeline_kinds(db, abandoned) == timeline
    assert await count(db, "calls") == 1

    cut_off = "1795313857.8"
    restart = Transcript.load(ASTERISK_FIXTURES / "asterisk-restart-midcall.jsonl")
    cut = restart.connection(1).until("Event: BridgeEnter")
    async with AmiStandIn([cut.then_close(), restart.connection(2)]) as server:
        async with bridge_on(server, settings, db) as core:
            await core.ami.request(QUEUE_ADD_8006)
            lost = await eventually(lambda: _lost(db, cut_off), 10, "the call to be marked lost")
            await core.settle()
            asterisk_wrote(settings, logged_lines("queue_log", cut_off), logged_lines("cdr-Master.csv", cut_off))
            await server.drop()
            await eventually(lambda: _true(core.ami.logins == 3 and core.ami.logged_in), 10, "a third login")
            await core.settle()
    completed = await call_row(db, cut_off)
    assert lost["ended_at"] is None and lost["talk_seconds"] is None
    assert completed["ended_at"] == datetime(2026, 11, 22, 2, 17, 40, tzinfo=timezone.utc)
    assert completed["talk_seconds"] == 3 and completed["reconciled_from"] == "queue_log"   # read first: the CDR adds nothing
    for column in ("started_at", "queued_at", "agent_answered_at", "agent_interface", "agent_name", "lost_at"):
        assert completed[column] == lost[column], column
    assert completed["outcome"] == "answered"
    (filled,) = [r["filled"] for r in await timeline_detail(db, cut_off, "call.reconciled") if r["source"] == "queue_log"]
    assert filled == ["ended_at", "talk_seconds"]


async def _lost(db, linkedid: str):
    row = await call_row(db, linkedid)
    return row if row is not None and row["lost_at"] is not None else None

"""Asterisk's own records of calls, read incrementally: the parsers on the
lines a real Asterisk 22 wrote (tests/fixtures/asterisk/logs/, E11), and the
reader across growth, half-written lines, rotation and truncation. No database."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ivr.calls import log_files
from ivr.calls.asterisk_logs import BadLine, parse_cdr_csv, parse_queue_log
from ivr.calls.reconcile import from_cdrs, from_queue_log, reconcile
from tests.conftest import ASTERISK_FIXTURES

LOGS = ASTERISK_FIXTURES / "logs"
DEPARTMENTS = {"general_queue": "general", "social_security": "social_security"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_queue_log_of_an_answered_call_gives_agent_hold_and_talk_time():
    """Capture 2's call as queue_log has it: ENTERQUEUE, CONNECT by 坐席8006, COMPLETECALLER."""
    entries = [(parse_queue_log(raw), raw.decode()) for raw in lines(LOGS / "queue_log")]
    evidence = from_queue_log(entries, DEPARTMENTS)
    call = evidence["1795313795.0"].facts
    assert call["queue"] == "social_security" and call["department"] == "social_security"
    assert call["queued_at"] == utc("2026-11-22 02:16:38") and call["caller_number"] == "13800138000"
    assert call["agent_name"] == "坐席8006" and call["agent_answered_at"] == utc("2026-11-22 02:16:38")
    assert call["hold_seconds"] == 0 and call["talk_seconds"] == 4
    assert call["ended_at"] == utc("2026-11-22 02:16:42")      # COMPLETECALLER: the caller hung up
    assert call["started_at"] == utc("2026-11-22 02:16:35")    # the Uniqueid's own clock
    abandoned = evidence["1795313813.2"].facts
    assert abandoned["abandoned_at"] == utc("2026-11-22 02:16:59") and abandoned["hold_seconds"] == 6
    # Member and queue events (ADDMEMBER, PAUSE, QUEUESTART) are about no call.
    assert set(evidence) == {"1795313795.0", "1795313813.2", "1795313823.3", "1795313835.4", "1795313857.8"}


def test_cdr_lines_give_caller_times_and_the_last_leg_end():
    """Capture 4's caller was redirected out of the queue to 8025: two CDRs, one Uniqueid."""
    records = [(parse_cdr_csv(raw), raw.decode()) for raw in lines(LOGS / "cdr-Master.csv")]
    evidence = from_cdrs(records, DEPARTMENTS)
    redirected = evidence["1795313835.4"].facts
    assert redirected["started_at"] == utc("2026-11-22 02:17:15")
    assert redirected["ended_at"] == utc("2026-11-22 02:17:26")       # the Dial leg's end, not the queue's
    assert redirected["caller_name"] == "王小明" and redirected["caller_number"] == "13800138000"
    assert redirected["queue"] == "social_security" and redirected["dialed_number"] == "8025"
    assert len(evidence["1795313835.4"].detail["records"]) == 2
    # E11: the call of the e2e run was sent to `s` of [hotline]: no number was dialled there.
    e2e = parse_cdr_csv((ASTERISK_FIXTURES / "e2e" / "call-while-bridge-down.cdr-master.csv").read_bytes().strip())
    facts = from_cdrs([(e2e, "")], DEPARTMENTS)["1796177237.6"].facts
    assert "dialed_number" not in facts and "caller_name" not in facts    # clid `"" <13800138000>`
    assert facts["caller_channel"] == "PJSIP/carrier-00000006" and facts["department"] == "general"


@pytest.mark.parametrize("raw, reason", [
    (b"garbage", "at least 5"),
    (b"1796177237|1796177237.6|general_queue|NONE|enterqueue||1|1", "not a queue_log event"),
    (b"yesterday|1796177237.6|general_queue|NONE|ABANDON|1|1|8", "not a Unix time"),
    (b"999999999999|1796177237.6|general_queue|NONE|ABANDON|1|1|8", "not a Unix time"),
    (b"1796177245|1796177237.6|general_\xffqueue|NONE|ABANDON|1|1|8", "not UTF-8"),
    (b"\x00\x00\x00\x00\x00\x00", "NUL"),
])
def test_a_garbage_queue_log_line_says_why(raw, reason):
    with pytest.raises(BadLine, match=reason):
        parse_queue_log(raw)


@pytest.mark.parametrize("raw, reason", [
    (b'"","13800138000","s"', "3 fields"),
    (b'"","1380013"8000",,,,,,,,,,,,,,,,', "bad CSV|fields"),
    (b'"","1","s","hotline","","PJSIP/x","","Queue","q","2026-12-02 02:07:17","","later",8,8,"ANSWERED",'
     b'"DOCUMENTATION","1796177237.6",""', "end 'later' is not a time"),
    (b'"","1","s","hotline","","PJSIP/x","","Queue","q","2026-12-02 02:07:17","","2026-12-02 02:07:25",8,8,'
     b'"ANSWERED","DOCUMENTATION","not-an-id",""', "not a channel's Uniqueid"),
])
def test_a_garbage_cdr_line_says_why(raw, reason):
    with pytest.raises(BadLine, match=reason):
        parse_cdr_csv(raw)


def test_a_call_the_store_has_whole_gets_nothing_and_a_lost_one_is_completed():
    entries = [(parse_queue_log(raw), raw.decode()) for raw in lines(LOGS / "queue_log")]
    evidence = from_queue_log(entries, DEPARTMENTS)["1795313857.8"]
    now = utc("2026-11-22 03:00:00")
    live = {"started_at": utc("2026-11-22 02:17:37.123456"), "queue": "social_security",
            "department": "social_security", "queued_at": utc("2026-11-22 02:17:37.5"),
            "agent_answered_at": utc("2026-11-22 02:17:37.9"), "agent_name": "坐席8006",
            "hold_seconds": 0, "caller_number": "13800138000", "agent_interface": "PJSIP/8006"}
    whole = {**live, "talk_seconds": 3, "ended_at": utc("2026-11-22 02:17:40.2")}
    assert not reconcile([evidence], {"1795313857.8": whole}, now).changes
    lost = {**live, "lost_at": now, "talk_seconds": None, "ended_at": None}
    result = reconcile([evidence], {"1795313857.8": lost}, now)
    (facts,) = result.changes.calls
    assert facts.fields == {"talk_seconds": 3, "ended_at": utc("2026-11-22 02:17:40"), "reconciled_from": "queue_log"}
    (row,) = result.changes.timeline
    assert row.kind == "call.reconciled" and row.detail["filled"] == ["ended_at", "talk_seconds"]
    assert row.detail["made"] is False and row.detail["source"] == "queue_log"


# -- reading across rotations ---------------------------------------------------------------

def read_all(path: Path, position):
    reading = log_files.read_new(path, position)
    return [line.text for line in reading.lines], reading


def test_only_new_whole_lines_are_read(tmp_path):
    path = tmp_path / "queue_log"
    path.write_bytes(b"one\ntwo\nthr")
    got, reading = read_all(path, None)
    assert got == [b"one", b"two"] and reading.position.offset == 8
    with path.open("ab") as handle:
        handle.write(b"ee\nfour\n")
    got, reading = read_all(path, reading.position)
    assert got == [b"three", b"four"]
    got, again = read_all(path, reading.position)
    assert got == [] and again.position == reading.position


def test_a_rotated_file_is_finished_before_the_new_one_is_read(tmp_path):
    """Asterisk's `logger rotate` (sequential): queue_log becomes queue_log.0 and a
    new queue_log starts; lines written just before the rotation are not lost."""
    path = tmp_path / "queue_log"
    path.write_bytes(b"one\n")
    _, reading = read_all(path, None)
    with path.open("ab") as handle:
        handle.write(b"two\n")
    os.rename(path, tmp_path / "queue_log.0")
    path.write_bytes(b"three\n")
    got, rotated = read_all(path, reading.position)
    assert got == [b"two", b"three"]
    assert any("rotated to queue_log.0" in note for note in rotated.notes)
    assert (rotated.position.inode, rotated.position.offset) == (path.stat().st_ino, 6)
    assert read_all(path, rotated.position)[0] == []


def test_a_rotated_file_that_is_gone_and_a_truncated_file_are_read_from_the_start(tmp_path):
    path = tmp_path / "Master.csv"
    path.write_bytes(b"one\ntwo\n")
    _, reading = read_all(path, None)
    os.rename(path, tmp_path / "Master.csv.1")
    path.write_bytes(b"three\n")
    os.unlink(tmp_path / "Master.csv.1")
    got, after_rotation = read_all(path, reading.position)
    assert got == [b"three"] and "the old file is gone" in after_rotation.notes[0]
    with path.open("r+b") as handle:        # logrotate's copytruncate
        handle.truncate(0)
        handle.write(b"4\n")
    got, truncated = read_all(path, after_rotation.position)
    assert got == [b"4"] and "truncated" in truncated.notes[0]


def test_a_new_file_on_a_reused_inode_is_told_by_its_first_line(tmp_path):
    path = tmp_path / "queue_log"
    path.write_bytes(b"first line of the old file\n")
    _, reading = read_all(path, None)
    with path.open("r+b") as handle:        # same inode, same length or longer, other content
        handle.write(b"first line of a new file!!\nmore\n")
    got, replaced = read_all(path, reading.position)
    assert got == [b"first line of a new file!!", b"more"]
    assert "another first line" in replaced.notes[0]


def test_a_reading_takes_about_its_budget_and_goes_on_next_time(tmp_path):
    path = tmp_path / "queue_log"
    path.write_bytes(b"".join(b"line %05d\n" % i for i in range(1000)))
    seen: list[bytes] = []
    position = None
    for _ in range(100):
        reading = log_files.read_new(path, position, budget=1000)
        if not reading.lines:
            break
        seen.extend(line.text for line in reading.lines)
        position = reading.position
    assert seen == [b"line %05d" % i for i in range(1000)]

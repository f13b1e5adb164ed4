"""A prompt Asterisk cannot play never ends the menu: replays of real Asterisk 22
captures of the keypad menu with missing sound files (E1, E2, in
tests/fixtures/asterisk/e2e/), and a caller who really hangs up during a prompt.

Asterisk answers ``result=-1`` in all three; only what follows differs
(ivr/menu/prompt_failure.py)."""

from __future__ import annotations

import logging

from tests.bridge_harness import (QUEUE_ADD_8006, bridge_on, menu_call_script, call_row, ended_call, eventually,
                                  timeline_detail, timeline_kinds)
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AgiCaller, AmiStandIn, Emulator, HangUp, Transcript
from tests.standin.framing import get_header

E2E = ASTERISK_FIXTURES / "e2e"
E1_CALL = "1796176919.1"     # keypad-missing-prompt
E2_CALL = "1796176941.2"     # keypad-missing-menu-prompt
MENU_CALL = "1795313795.0"   # call-menu-queue-answered


def logged(caplog, event: str) -> list[dict]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == event]


def agi_sent(server: AmiStandIn) -> list[str]:
    return [get_header(m, "Command") for m in server.received[0] if get_header(m, "Action") == "AGI"]


async def test_a_missing_greeting_is_recorded_as_a_prompt_failure_not_a_caller_who_left(settings, db, caplog):
    """E1: STREAM FILE of a missing file fails, Asterisk ends the AGI session
    itself (AGISTATUS=FAILURE) and the dialplan queues the caller in
    general_queue. The timeline used to say menu.caller_left."""
    caplog.set_level(logging.INFO)
    script = Transcript.load(E2E / "keypad-missing-prompt.jsonl").connection(1)
    async with AmiStandIn([script], emulator=Emulator(agi=AgiCaller())) as server:
        async with bridge_on(server, settings, db) as core:
            call = await ended_call(db, E1_CALL, timeout=15)
            await core.settle()
    assert agi_sent(server) == ['STREAM FILE hotline/welcome "0123456789*#"']   # nothing after it
    failed = await timeline_detail(db, E1_CALL, "menu.prompt_failed")
    assert failed == [{"prompt": "hotline/welcome", "command": "STREAM FILE", "result": "200 result=-1 endpos=0",
                       "reaction": "dialplan_fallback",
                       "detail": "Asterisk ended the AGI session; the dialplan queues the caller"}]
    assert "menu.caller_left" not in await timeline_kinds(db, E1_CALL)
    assert call["queue"] == "general_queue" and call["department"] == "general"
    [line] = logged(caplog, "menu.prompt_failed")
    assert (line["file"], line["channel"], line["uniqueid"], line["level"]) == (
        "hotline/welcome", "PJSIP/carrier-00000001", E1_CALL, "error")


async def test_a_missing_menu_prompt_sends_the_caller_to_a_person_not_to_silence(settings, db, caplog):
    """E2: GET DATA of a missing file answers 200 result=-1 at once, the line a
    hangup gives, but the AGI session stays open: the caller waited in silence
    (42 s in the capture, up to TIMEOUT(absolute)=300 s). The menu must see that
    the caller is still there and send them to the general queue."""
    caplog.set_level(logging.INFO)
    script = Transcript.load(E2E / "keypad-missing-menu-prompt.jsonl").connection(1)
    emulator = Emulator(agi=AgiCaller())
    async with AmiStandIn([script], emulator=emulator) as server:
        async with bridge_on(server, settings, db) as core:
            async def routed():
                return await timeline_detail(db, E2_CALL, "menu.routed")
            await eventually(routed, 10, "the caller to be sent on")
            await core.settle()
            call = await call_row(db, E2_CALL)
    assert agi_sent(server) == ['STREAM FILE hotline/welcome "0123456789*#"', "GET DATA hotline/menu-main 5000 1",
                                "CHANNEL STATUS", "SET VARIABLE HOTLINE_INTENT general", "ASYNCAGI BREAK"]
    # The question and the way out ran in the open AGI session (the stand-in answered them).
    assert [c for _, c in emulator.agi_commands] == agi_sent(server)[2:]
    failed = await timeline_detail(db, E2_CALL, "menu.prompt_failed")
    assert failed == [{"prompt": "hotline/menu-main", "command": "GET DATA", "result": "200 result=-1",
                       "reaction": "fallback_queue",
                       "detail": "the AGI session stayed open; the menu sends the caller to a person"}]
    routed = await timeline_detail(db, E2_CALL, "menu.routed")
    assert routed == [{"department": "general", "queue": "general_queue", "reason": "prompt_failed"}]
    assert "menu.caller_left" not in await timeline_kinds(db, E2_CALL)
    assert call["department"] == "general"
    [line] = logged(caplog, "menu.prompt_failed")
    assert (line["file"], line["channel"], line["uniqueid"]) == (
        "hotline/menu-main", "PJSIP/carrier-00000002", E2_CALL)


async def test_a_caller_hanging_up_during_get_data_still_ends_the_menu_quietly(settings, db):
    """The same 200 result=-1, after HangupRequest and followed by AsyncAGIEnd,
    AGISTATUS=HANGUP and Hangup: the caller has gone; nothing more is sent."""
    script = menu_call_script()
    emulator = Emulator(agi=AgiCaller(inputs=[HangUp()]))
    async with AmiStandIn([script], emulator=emulator) as server:
        async with bridge_on(server, settings, db) as core:
            await core.ami.request(QUEUE_ADD_8006)

            async def left():
                return await timeline_detail(db, MENU_CALL, "menu.caller_left")
            assert await eventually(left, 10, "the menu to see the caller leave")
            await core.settle()
    assert agi_sent(server) == ['STREAM FILE hotline/welcome "0123456789*#"', "GET DATA hotline/menu-main 5000 1"]
    kinds = await timeline_kinds(db, MENU_CALL)
    assert "menu.prompt_failed" not in kinds and "menu.routed" not in kinds


async def test_a_missing_retry_prompt_is_left_to_the_dialplan(settings, db):
    """The invalid-key prompt is missing: STREAM FILE fails as in E1, Asterisk
    ends the AGI session and the dialplan queues the caller; the menu records it
    and sends nothing into the ended session."""
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-asyncagi-break-fallback.jsonl")
    script = transcript.connection(1).without_agi(lambda command: True).until("Event: AsyncAGIStart")
    emulator = Emulator(agi=AgiCaller(inputs=["*"], missing={"hotline/invalid"}))
    async with AmiStandIn([script], emulator=emulator) as server:
        async with bridge_on(server, settings, db) as core:
            async def failed():
                return await timeline_detail(db, "1795313823.3", "menu.prompt_failed")
            rows = await eventually(failed, 10, "the prompt failure to be recorded")
            await core.settle()
    assert rows[0]["prompt"] == "hotline/invalid" and rows[0]["reaction"] == "dialplan_fallback"
    assert agi_sent(server)[-1] == 'STREAM FILE hotline/invalid "0123456789*#"'
    assert "menu.caller_left" not in await timeline_kinds(db, "1795313823.3")

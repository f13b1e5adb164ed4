"""Whole calls through the real network path: captured Asterisk 22 AMI bytes →
TCP → panoramisk + our layer → tracker → PostgreSQL, and the keypad menu's
AsyncAGI commands back over the same socket."""

import hashlib

from tests.bridge_harness import (
    QUEUE_ADD_8006,
    bridge_on,
    menu_call_script,
    ended_call,
    install_recordings,
    replay_call,
    timeline_detail,
    timeline_kinds,
)
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AgiCaller, AmiStandIn, Emulator, Transcript
from tests.standin.framing import get_header

MENU_CALL = "1795313795.0"
ABANDONED_CALL = "1795313813.2"
BREAK_CALL = "1795313823.3"


menu_script = menu_call_script


async def test_menu_call_routed_by_key_and_answered_by_agent(settings, db):
    install_recordings(settings)
    emulator = Emulator(agi=AgiCaller(inputs=["3"]))
    async with AmiStandIn([menu_script()], emulator=emulator) as server:
        async with bridge_on(server, settings, db) as bridge:
            added = await bridge.ami.request(QUEUE_ADD_8006)
            assert added["Message"] == "Added interface to queue"
            call = await ended_call(db, MENU_CALL)
            await bridge.settle()
        await server.wait_script_done(timeout=5)
        assert server.unexpected == []

    # Every AGI command the menu sent, in the order the stand-in received them: the
    # emulated caller answered the first five (app_queue: somebody is logged in), the
    # script took EXEC Queue; the BREAK queued behind it never ran (the caller hung up).
    # The last-resort timeout must be cleared before the caller enters the queue.
    sent = [get_header(m, "Command") for m in server.received[0] if get_header(m, "Action") == "AGI"]
    assert sent == [
        'STREAM FILE hotline/welcome "0123456789*#"',
        "GET DATA hotline/menu-main 5000 1",
        "SET VARIABLE HOTLINE_INTENT social_security",
        "GET VARIABLE QUEUE_MEMBER(social_security,logged)",
        "SET VARIABLE TIMEOUT(absolute) 0",
        "EXEC Queue social_security,c",
        "ASYNCAGI BREAK",
    ]
    assert [command for _, command in emulator.agi_commands] == sent[:-2]

    assert call["outcome"] == "answered"
    assert call["caller_name"] == "王小明" and call["caller_number"] == "13800138000"
    assert call["department"] == "social_security" and call["queue"] == "social_security"
    assert call["agent_interface"] == "PJSIP/8006" and call["agent_name"] == "坐席8006"
    assert call["talk_seconds"] == 4 and call["hangup_cause"] == 16
    assert call["menu_started_at"] is not None

    kinds = await timeline_kinds(db, MENU_CALL)
    assert kinds.index("menu.started") < kinds.index("menu.key") < kinds.index("menu.routed")
    assert kinds.index("menu.routed") < kinds.index("queue.joined") < kinds.index("agent.connected")
    assert kinds.index("agent.connected") < kinds.index("agent.completed")
    assert (await timeline_detail(db, MENU_CALL, "menu.key"))[0]["key"] == "3"

    async with db.acquire() as conn:
        recording = await conn.fetchrow("SELECT * FROM recordings WHERE linkedid = $1", MENU_CALL)
        members = await conn.fetch("SELECT * FROM queue_members WHERE interface = 'PJSIP/8006'")
    wav = ASTERISK_FIXTURES / "recordings/monitor/2026/11/22/1795313795.0.wav"
    assert recording["status"] == "ok"
    assert recording["asterisk_path"] == "/var/spool/asterisk/monitor/2026/11/22/1795313795.0.wav"
    assert recording["bytes"] == 64044 and float(recording["duration_seconds"]) == 4.0
    assert recording["sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()
    assert [m["queue"] for m in members] == ["social_security"]


async def test_invalid_key_then_valid_choice(settings, db):
    emulator = Emulator(agi=AgiCaller(inputs=["*", "3"]))
    async with AmiStandIn([menu_script()], emulator=emulator) as server:
        async with bridge_on(server, settings, db) as bridge:
            await bridge.ami.request(QUEUE_ADD_8006)
            call = await ended_call(db, MENU_CALL)
            await bridge.settle()
    assert call["outcome"] == "answered" and call["department"] == "social_security"
    keys = await timeline_detail(db, MENU_CALL, "menu.key")
    assert [(k["key"], k["decision"]) for k in keys] == [("*", "retry"), ("3", "route")]
    retries = await timeline_detail(db, MENU_CALL, "menu.retry")
    assert retries == [{"reason": "invalid", "failures": 1}]
    commands = [command for _, command in emulator.agi_commands]
    assert 'STREAM FILE hotline/invalid "0123456789*#"' in commands


async def test_repeated_invalid_input_ends_in_general_queue(settings, db):
    """Three bad attempts (invalid, none, invalid): the menu gives up and breaks
    out of AGI; the captured dialplan then queues the caller in general_queue,
    where they abandon."""
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-asyncagi-break-fallback.jsonl")
    emulator = Emulator(agi=AgiCaller(inputs=["*", None, "*"]))
    async with AmiStandIn([transcript.connection(1)], emulator=emulator) as server:
        async with bridge_on(server, settings, db) as bridge:
            call = await ended_call(db, BREAK_CALL)
            await bridge.settle()
        assert server.unexpected == []
    commands = [command for _, command in emulator.agi_commands]
    assert commands.count("GET DATA hotline/menu-main 5000 1") == 3
    assert 'STREAM FILE hotline/no-input "0123456789*#"' in commands
    routed = await timeline_detail(db, BREAK_CALL, "menu.routed")
    assert routed == [{"department": "general", "queue": "general_queue", "reason": "gave_up"}]
    assert call["outcome"] == "abandoned"
    assert call["queue"] == "general_queue" and call["hold_seconds"] == 5


async def test_abandoned_call_and_its_header_only_recording(settings, db):
    install_recordings(settings)
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    call = await replay_call(transcript.connection(1), settings, db, ABANDONED_CALL)
    assert call["outcome"] == "abandoned"
    assert call["hold_seconds"] == 6 and call["agent_answered_at"] is None
    assert call["department"] == "general"
    async with db.acquire() as conn:
        recording = await conn.fetchrow("SELECT * FROM recordings WHERE linkedid = $1", ABANDONED_CALL)
    # Recorded with MixMonitor's b option: nothing but the 44-byte header. Flagged, not hidden.
    assert recording["status"] == "empty" and recording["bytes"] == 44
    assert "no audio" in recording["problem"]


async def test_missing_recording_is_flagged(settings, db):
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    await replay_call(transcript.connection(1), settings, db, ABANDONED_CALL)
    async with db.acquire() as conn:
        recording = await conn.fetchrow("SELECT * FROM recordings WHERE linkedid = $1", ABANDONED_CALL)
    assert recording["status"] == "missing" and recording["sha256"] is None


async def test_malformed_agi_environment_sends_caller_to_general_queue(settings, db, caplog):
    """A broken AsyncAGIStart Env: the bridge says so and breaks out of AGI, so the
    dialplan queues the caller for a person instead of leaving them in silence."""
    from tests.standin import Script, Send

    transcript = Transcript.load(ASTERISK_FIXTURES / "call-asyncagi-break-fallback.jsonl")
    steps = []
    for step in transcript.connection(1):
        if isinstance(step, Send) and b"Env: agi_request" in step.data:
            head, _, rest = step.data.partition(b"Env: ")
            _, _, tail = rest.partition(b"\r\n")
            step = Send(head + b"Env: %ZZnot-an-agi-environment\r\n" + tail, step.t)
        steps.append(step)
    emulator = Emulator(agi=AgiCaller(inputs=[]))
    async with AmiStandIn([Script(steps)], emulator=emulator) as server:
        async with bridge_on(server, settings, db) as bridge:
            call = await ended_call(db, BREAK_CALL)
            await bridge.settle()
        assert server.unexpected == []
    sent = [m["Command"] for m in server.received[0] if m.get("Action") == "AGI"]
    assert sent == ["ASYNCAGI BREAK"]  # matched the capture's own BREAK step
    assert "malformed AGI environment" in caplog.text
    assert "menu.rescued" in await timeline_kinds(db, BREAK_CALL)
    assert call["queue"] == "general_queue"

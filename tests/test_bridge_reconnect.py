"""Reconnects, resyncs and bad bytes on the AMI socket, end to end."""

import logging

from tests.bridge_harness import (
    QUEUE_ADD_8006,
    bridge_on,
    call_row,
    ended_call,
    eventually,
    install_recordings,
    replay_call,
    timeline_kinds,
)
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AmiStandIn, Transcript, expect_of

RESTART_CALL = "1795313857.8"
ABANDONED_CALL = "1795313813.2"


async def count(db, sql: str, *args) -> int:
    async with db.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def test_asterisk_restart_mid_call(settings, db):
    """Capture 5: `core restart now` during a bridged call. The bridge records the
    hangups Asterisk sends before it goes, is refused while Asterisk restarts,
    logs in again, resyncs (no channels; the dynamic member survived) and keeps
    exactly one record of the call."""
    transcript = Transcript.load(ASTERISK_FIXTURES / "asterisk-restart-midcall.jsonl")
    server = AmiStandIn([transcript.connection(1), transcript.connection(2)], refuse_between=0.6)
    async with server:
        async with bridge_on(server, settings, db) as bridge:
            await bridge.ami.request(QUEUE_ADD_8006)
            await eventually(lambda: _true(bridge.ami.logins == 2 and bridge.ami.logged_in), 10,
                             "second login")
            call = await ended_call(db, RESTART_CALL)
            await bridge.settle()
            assert server.connections == 2
        await server.wait_script_done(timeout=5)
        assert server.unexpected == []
    assert call["outcome"] == "answered" and call["agent_interface"] == "PJSIP/8006"
    assert call["lost_at"] is None
    assert await count(db, "SELECT count(*) FROM calls WHERE caller_number = '13800138000'") == 1
    async with db.acquire() as conn:
        member = await conn.fetchrow("SELECT * FROM queue_members WHERE interface = 'PJSIP/8006'")
    assert member["queue"] == "social_security" and member["paused"] is False


async def _true(value):
    return value


async def test_connection_dropped_mid_call_marks_call_lost_after_resync(settings, db):
    """The socket dies mid-call, in the middle of a frame; when the bridge is back,
    Asterisk has no channels any more: the call is closed as lost (its Hangup was
    never seen) and its recording, complete by now, is registered."""
    install_recordings(settings)
    transcript = Transcript.load(ASTERISK_FIXTURES / "asterisk-restart-midcall.jsonl")
    first = transcript.connection(1)
    cut = first.until("Event: BridgeEnter").insert_raw(-1, b"Event: Newstate\r\nPrivilege: call,all\r\nChan")
    server = AmiStandIn([cut.then_close(), transcript.connection(2)])
    async with server:
        async with bridge_on(server, settings, db) as bridge:
            await bridge.ami.request(QUEUE_ADD_8006)
            call = await eventually(lambda: _lost(db), 10, "the call to be marked lost")
            await bridge.settle()
            assert bridge.ami.logins == 2
    # Answered before the bridge lost sight of it: it still counts as answered,
    # with lost_at saying its end is unknown.
    assert call["outcome"] == "answered" and call["ended_at"] is None and call["lost_at"] is not None
    kinds = await timeline_kinds(db, RESTART_CALL)
    assert "agent.connected" in kinds and kinds[-1] == "call.lost"
    async with db.acquire() as conn:
        recording = await conn.fetchrow("SELECT * FROM recordings WHERE linkedid = $1", RESTART_CALL)
    assert recording["status"] == "ok" and float(recording["duration_seconds"]) == 3.04


async def _lost(db):
    row = await call_row(db, RESTART_CALL)
    return row if row is not None and row["lost_at"] is not None else None


async def test_events_replayed_after_reconnect_do_not_double_count(settings, db):
    """The same call's events arrive twice, on two connections (a proxy or a
    replaying client could do this): one call, and each timeline row once."""
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    once = transcript.connection(1).until(expect_of("Logoff"))
    without_logoff = once[: len(once) - 1]
    server = AmiStandIn([without_logoff.then_close(), without_logoff])
    async with server:
        async with bridge_on(server, settings, db) as bridge:
            await server.wait_script_done(timeout=10)
            # A Ping answered means every event sent before it has been dispatched.
            await bridge.ami.request({"Action": "Ping"})
            await bridge.settle()
            assert bridge.ami.logins == 2
            after_both = await count(db, "SELECT count(*) FROM call_events WHERE linkedid = $1", ABANDONED_CALL)
    kinds = await timeline_kinds(db, ABANDONED_CALL)
    assert kinds.count("queue.abandoned") == 1 and kinds.count("channel.hangup") == 1
    assert kinds.count("cdr") == 1
    assert after_both == len(kinds)
    assert await count(db, "SELECT count(*) FROM calls") == 1
    row = await call_row(db, ABANDONED_CALL)
    assert row["hold_seconds"] == 6 and row["outcome"] == "abandoned"


async def test_garbage_truncated_frame_and_unknown_event_are_logged_and_ignored(settings, db, caplog):
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    clean = transcript.connection(1)
    noise = (
        b"this is not AMI at all\r\n\r\n"
        + b"Event: HotlineFooBar\r\nPrivilege: call,all\r\nFoo: bar\r\n\r\n"
        # A frame that lost its end: the next real message (Newchannel) follows directly.
        + b"Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/90\r\n"
    )
    noisy = clean.insert_raw("Event: FullyBooted", noise)
    caplog.set_level(logging.WARNING)
    async with AmiStandIn([noisy]) as server:
        async with bridge_on(server, settings, db) as bridge:
            call = await ended_call(db, ABANDONED_CALL)
            await bridge.settle()
    noisy_kinds = await timeline_kinds(db, ABANDONED_CALL)
    assert call["outcome"] == "abandoned" and call["caller_name"] == "王小明"
    assert noisy_kinds[0] == "channel.created"
    assert "ami.frame_unparseable" in caplog.text
    assert "ami.frame_truncated" in caplog.text

    # Nothing was lost: the same call without the noise gives the same timeline.
    async with db.acquire() as conn:
        await conn.execute("TRUNCATE calls CASCADE")
    await replay_call(clean, settings, db, ABANDONED_CALL)
    assert await timeline_kinds(db, ABANDONED_CALL) == noisy_kinds

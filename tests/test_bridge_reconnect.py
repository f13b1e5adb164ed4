"""Reconnects, resyncs and bad bytes on the AMI socket, end to end."""

import logging
from datetime import datetime, timezone

from aiohttp.test_utils import TestClient, TestServer

from hotline.app import CORE, create_app
from tests.bridge_harness import (
    QUEUE_ADD_8006,
    bearer,
    bridge_on,
    call_row,
    ended_call,
    eventually,
    install_recordings,
    replay_call,
    timeline_detail,
    timeline_kinds,
)
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AmiStandIn, Emulator, Transcript, expect_of, find_action_id, recorded_list

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


async def test_a_call_cut_by_an_asterisk_restart_is_recorded_as_such(settings, db):
    """Capture 5 again: Asterisk's Hangups say "16 Normal Clearing", as if the
    caller had hung up; before them each channel got SoftHangupRequest Cause 4
    (AST_SOFTHANGUP_SHUTDOWN), and Event: Shutdown (Restart: True) comes 1.1 s after
    the Hangups. The call is stored as ended by the Asterisk restart, in the record,
    the timeline and /api/calls."""
    transcript = Transcript.load(ASTERISK_FIXTURES / "asterisk-restart-midcall.jsonl")
    server = AmiStandIn([transcript.connection(1), transcript.connection(2)], refuse_between=0.6)
    async with server:
        app = create_app(settings.with_overrides(ami={"port": server.port}), pool=db)
        async with TestClient(TestServer(app)) as client:
            bridge = app[CORE]
            await bridge.ami.wait_logged_in(timeout=5)
            await bridge.ami.request(QUEUE_ADD_8006)
            await eventually(lambda: _true(bridge.ami.logins == 2 and bridge.ami.logged_in), 10, "second login")
            await ended_call(db, RESTART_CALL)
            await bridge.settle()
            auth = await bearer(db)
            listing = await (await client.get("/api/calls?limit=5", headers=auth)).json()
            one = await (await client.get(f"/api/calls/{RESTART_CALL}", headers=auth)).json()
    assert [(c["linkedid"], c["ended_by"]) for c in listing["calls"]] == [(RESTART_CALL, "asterisk_restart")]
    call = one["call"]
    assert call["ended_by"] == "asterisk_restart" and call["outcome"] == "answered"
    assert call["hangup_cause"] == 16  # what Asterisk said: Normal Clearing
    kinds = [e["kind"] for e in one["timeline"]]
    assert kinds.count("asterisk.shutting_down") == 2  # the caller's and the agent's channels
    assert kinds.index("asterisk.shutting_down") < kinds.index("channel.hangup")
    cut = [e for e in one["timeline"] if e["kind"] == "call.cut_by_asterisk"]
    assert len(cut) == 1 and cut[0]["detail"]["restart"] is True
    assert cut[0]["detail"]["ended_by"] == "asterisk_restart" and cut[0]["detail"]["shutdown"] == "Cleanly"
    # An ordinary call (the caller hangs up) has no ended_by.
    assert await count(db, "SELECT count(*) FROM calls WHERE ended_by IS NOT NULL") == 1


async def test_a_call_cut_by_asterisk_going_down_without_its_shutdown_event(settings, db):
    """The connection drops between the Hangups and Event: Shutdown: the call was
    still cut by Asterisk (whether it restarted is unknown), settled at the next login."""
    transcript = Transcript.load(ASTERISK_FIXTURES / "asterisk-restart-midcall.jsonl")
    first = transcript.connection(1)
    without_shutdown = first[: first.index_of("Event: Shutdown")].then_close()
    server = AmiStandIn([without_shutdown, transcript.connection(2)], refuse_between=0.6)
    async with server:
        async with bridge_on(server, settings, db) as bridge:
            await bridge.ami.request(QUEUE_ADD_8006)
            await eventually(lambda: _true(bridge.ami.logins == 2 and bridge.ami.logged_in), 10, "second login")
            call = await eventually(lambda: _cut(db), 10, "the call to be settled as cut by Asterisk")
            await bridge.settle()
    assert call["ended_by"] == "asterisk_shutdown" and call["lost_at"] is None and call["outcome"] == "answered"
    detail = await timeline_detail(db, RESTART_CALL, "call.cut_by_asterisk")
    assert len(detail) == 1 and "restart" not in detail[0]


async def _true(value):
    return value


async def _cut(db):
    row = await call_row(db, RESTART_CALL)
    return row if row is not None and row["ended_by"] is not None else None


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


async def test_a_caller_queued_across_a_reconnect_gets_the_queue_and_when(settings, db):
    """A caller joined social_security while the bridge was away and still waits
    when it logs in (capture 4's listings: CoreShowChannels shows the channel in
    Queue, QueueStatus's QueueEntry says the queue and the wait)."""
    actions = Transcript.load(ASTERISK_FIXTURES / "actions.jsonl")
    emulator = Emulator()
    emulator.lists["CoreShowChannels"] = recorded_list(actions, find_action_id(actions, "CoreShowChannels"))
    emulator.lists["QueueStatus"] = recorded_list(actions, find_action_id(actions, "QueueStatus"))
    async with AmiStandIn([], emulator=emulator) as server:
        async with bridge_on(server, settings, db) as core:
            logged_in = datetime.now(timezone.utc)
            await core.settle()
    row = await call_row(db, "1795313835.4")
    assert row["queue"] == "social_security" and row["department"] == "social_security"
    assert row["queued_at"] is not None and abs((logged_in - row["queued_at"]).total_seconds() - 1) < 1
    assert row["outcome"] == "in_progress"
    waiting = await timeline_detail(db, "1795313835.4", "queue.waiting")
    assert waiting == [{"queue": "social_security", "position": 1, "wait_seconds": 1}]

"""panoramisk 1.4's faults, each shown against the stand-in, and our fix beside it.

Every test drives real TCP with bytes captured from Asterisk 22. The "fault"
half uses panoramisk exactly as released, so if a later panoramisk fixes one of
these, that half fails and tells us the workaround can go.
"""

import asyncio
from dataclasses import replace

import pytest
from panoramisk import Manager

from ivr.ami import AmiActionTimeout, AmiConnection
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AmiStandIn, Send, Transcript

QUEUE_ADD = {"Action": "QueueAdd", "Queue": "social_security", "Interface": "PJSIP/8006",
             "Penalty": "0", "Paused": "false", "MemberName": "坐席8006"}


def restart_transcript():
    return Transcript.load(ASTERISK_FIXTURES / "asterisk-restart-midcall.jsonl")


async def panoramisk_manager(port: int) -> Manager:
    manager = Manager(host="127.0.0.1", port=port, username="hotline", secret="s3cret",
                      ping_delay=3600, reconnect_timeout=3600)
    logged_in = asyncio.get_running_loop().create_future()
    manager.on_login = lambda m: logged_in.done() or logged_in.set_result(True)
    manager.connect()
    await asyncio.wait_for(logged_in, 5)
    return manager


async def our_connection(settings, port: int) -> AmiConnection:
    ami = AmiConnection(replace(settings.ami, port=port))
    ami.connect()
    await ami.wait_logged_in(5)
    return ami


async def test_queueadd_completes(settings):
    script = restart_transcript().connection(1).until("Event: QueueMemberAdded")
    async with AmiStandIn([script, script]) as server:
        manager = await panoramisk_manager(server.port)
        try:
            with pytest.raises(asyncio.TimeoutError):  # fault: "Added ... to queue" read as a list
                await asyncio.wait_for(manager.send_action(dict(QUEUE_ADD)), 1.0)
        finally:
            manager.close()
        ami = await our_connection(settings, server.port)
        try:
            response = await ami.request(QUEUE_ADD)
            assert response["Response"] == "Success"
            assert response["Message"] == "Added interface to queue"
        finally:
            await ami.close()


async def test_actions_time_out(settings):
    async with AmiStandIn([]) as server:  # idle Asterisk that answers...
        ami = await our_connection(settings, server.port)
        try:
            server.go_silent(0)  # ...until it stops answering
            started = asyncio.get_running_loop().time()
            with pytest.raises(AmiActionTimeout, match="QueueStatus"):
                await ami.request({"Action": "QueueStatus"}, timeout=0.3)
            assert asyncio.get_running_loop().time() - started < 1.0
            assert not ami.protocol.responses  # the abandoned action does not linger
        finally:
            await ami.close()


async def test_half_open_socket_is_noticed_and_replaced(settings):
    async with AmiStandIn([]) as server:
        manager = await panoramisk_manager(server.port)
        try:
            manager.ping_interval = 0.1
            manager.ping()
            server.go_silent(0)
            await asyncio.sleep(0.6)  # several unanswered pings later...
            assert manager._connected and not manager.protocol.closed  # fault: nothing noticed
        finally:
            manager.close()
        ami = await our_connection(settings, server.port)  # ping_interval 0.5, ping_timeout 0.5
        try:
            server.go_silent(1)
            deadline = asyncio.get_running_loop().time() + 5
            while ami.logins < 2:
                assert asyncio.get_running_loop().time() < deadline, "half-open socket not noticed"
                await asyncio.sleep(0.05)
            await ami.wait_logged_in(5)
            assert server.connections == 3
            assert (await ami.request({"Action": "Ping"}))["Ping"] == "Pong"
        finally:
            await ami.close()


async def test_utf8_character_split_across_reads(settings):
    """王 (E7 8E 8B) split between two TCP reads of the Newchannel event."""
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    script = transcript.connection(1).until("Event: Newchannel").split_inside("王")
    names = {"panoramisk": [], "ours": []}

    async with AmiStandIn([script, script]) as server:
        manager = await panoramisk_manager(server.port)
        manager.register_event("Newchannel", lambda m, e: names["panoramisk"].append(e["CallerIDName"]))
        try:
            await server.wait_script_done(0, timeout=5)
            await asyncio.sleep(0.1)
        finally:
            manager.close()
        ami = AmiConnection(replace(settings.ami, port=server.port))
        ami.register_event("Newchannel", lambda m, e: names["ours"].append(e["CallerIDName"]))
        ami.connect()
        try:
            await server.wait_script_done(1, timeout=5)
            await ami.request({"Action": "Ping"})
        finally:
            await ami.close()
    assert names["panoramisk"] == ["小明"]  # fault: 王 silently dropped
    assert names["ours"] == ["王小明"]


async def test_refused_login_is_reported_and_retried(settings, caplog):
    transcript = Transcript.load(ASTERISK_FIXTURES / "ami-login-and-idle.jsonl")
    # conn 2 of the capture: a Ping before login is refused, then a bad secret is
    # refused after 1 s and Asterisk closes the socket.
    bad_login = transcript.connection(2).after(lambda step: getattr(step, "action", "") == "Ping")
    async with AmiStandIn([bad_login]) as server:
        ami = AmiConnection(replace(settings.ami, port=server.port, reconnect_max=0.2))
        ami.connect()
        try:
            await ami.wait_logged_in(5)  # the next connection gets the idle Asterisk
            assert ami.logins == 1 and server.connections == 2
        finally:
            await ami.close()
    assert "ami.login_refused" in caplog.text


async def test_an_event_with_a_response_header_is_one_event(settings, caplog):
    """Our reader's own fault, not panoramisk's: the real OriginateResponse
    (actions.jsonl) carries a Response header behind Event, Privilege and ActionID;
    the reader took that line for the start of a new message and cut the event
    there (ami.frame_truncated), so no callback's outcome ever arrived."""
    transcript = Transcript.load(ASTERISK_FIXTURES / "actions.jsonl")
    [chunk] = [s.data for s in transcript.connection(1) if isinstance(s, Send) and b"Event: OriginateResponse" in s.data]
    async with AmiStandIn([]) as server:
        ami = await our_connection(settings, server.port)
        heard = asyncio.get_running_loop().create_future()
        ami.register_event("OriginateResponse", lambda _manager, message: heard.done() or heard.set_result(message))
        try:
            await server.inject(chunk)
            event = await asyncio.wait_for(heard, 5)
        finally:
            await ami.close()
    assert (event["ActionID"], event["Response"], event["Reason"], event["Uniqueid"], event["CallerIDName"]) == (
        "originate-chanspy", "Success", "4", "1795313840.6", "质检监听")
    assert "ami.frame_truncated" not in caplog.text

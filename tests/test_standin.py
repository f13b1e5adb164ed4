"""Tests of the Asterisk stand-in itself, driven by a raw asyncio client."""

from __future__ import annotations

import asyncio

import pytest

try:
    from tests.standin import (AgiCaller, AmiStandIn, Barge, Emulator, Expect, ScriptNotDone, Send,
                               Transcript, find_action_id, recorded_list)
    from tests.standin.framing import parse_message, split_messages
    from tests.standin.substitution import IdTable, substitute_chunks
except ModuleNotFoundError:  # tests/ is not a package: pytest put it on sys.path
    from standin import (AgiCaller, AmiStandIn, Barge, Emulator, Expect, ScriptNotDone, Send,
                         Transcript, find_action_id, recorded_list)
    from standin.framing import parse_message, split_messages
    from standin.substitution import IdTable, substitute_chunks

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
CALLER = "PJSIP/9000-00000000"


# -- a tiny raw AMI client ------------------------------------------------------
_OPEN_CLIENTS: list["RawClient"] = []


@pytest.fixture(autouse=True)
async def _close_clients():
    yield
    while _OPEN_CLIENTS:
        _OPEN_CLIENTS.pop().close()
    await asyncio.sleep(0)


class RawClient:
    """Plain asyncio streams; records every TCP read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""
        self.reads: list[bytes] = []

    @classmethod
    async def connect(cls, port: int) -> "RawClient":
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        _OPEN_CLIENTS.append(client)
        return client

    def send(self, *messages: str) -> None:
        for message in messages:
            self.writer.write(message.encode("utf-8"))

    def action(self, action: str, action_id: str, **headers: str) -> None:
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.send("\r\n".join(lines) + "\r\n\r\n")

    async def _fill(self, timeout: float) -> bool:
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        if data:
            self.reads.append(data)
            self.buffer += data
        return bool(data)

    async def banner(self, timeout: float = 2) -> bytes:
        while b"\r\n" not in self.buffer:
            assert await self._fill(timeout), "EOF before the banner"
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    async def message(self, timeout: float = 2) -> str:
        while b"\r\n\r\n" not in self.buffer:
            assert await self._fill(timeout), "EOF before a complete message"
        raw, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return raw.decode("utf-8") + "\r\n\r\n"

    async def until(self, predicate, timeout: float = 2) -> list[str]:
        seen = []
        while True:
            seen.append(await self.message(timeout))
            if predicate(parse_message(seen[-1])):
                return seen

    async def read_to_eof(self, timeout: float = 5) -> bytes:
        while await self._fill(timeout):
            pass
        return self.buffer

    def close(self) -> None:
        self.writer.close()


def is_event(name: str, **headers: str):
    return lambda h: h.get("Event") == name and all(h.get(k) == v for k, v in headers.items())


def agi(client: RawClient, action_id: str, command: str, command_id: str, channel: str = CALLER):
    client.action("AGI", action_id, Channel=channel, Command=command, CommandID=command_id)


# -- replay ------------------------------------------------------------------------
async def test_login_replays_banner_first_with_client_action_ids():
    t = Transcript.load("ami-login-and-idle.jsonl")
    async with AmiStandIn([t.connection(1)]) as server:
        client = await RawClient.connect(server.port)
        assert await client.banner() == BANNER
        client.action("Login", "mine-1", Username="hotline", Secret="s3cret")
        assert await client.message() == (
            "Response: Success\r\nActionID: mine-1\r\nMessage: Authentication accepted\r\n\r\n")
        assert parse_message(await client.message())["Event"] == "FullyBooted"
        client.action("Ping", "mine-2")
        pong = await client.message()
        assert pong == ("Response: Success\r\nActionID: mine-2\r\nPing: Pong\r\n"
                        "Timestamp: 1795313782.497974\r\n\r\n")
        client.action("Events", "mine-3", EventMask="off")
        client.action("Events", "mine-4", EventMask="on")
        client.action("Ping", "mine-5")
        client.action("Logoff", "mine-6")
        rest = (await client.read_to_eof()).decode()
        assert "ActionID: mine-6\r\nMessage: Thanks for all the fish." in rest
        assert "idle-1-" not in pong + rest
        await server.wait_script_done()
        assert [m["ActionID"] for m in server.received[0]] == [f"mine-{i}" for i in range(1, 7)]
        assert server.unexpected == []


async def test_menu_call_with_emulated_agi_plays_to_logoff():
    t = Transcript.load("call-menu-queue-answered.jsonl")
    script = t.connection(1).without_agi(lambda c: not c.startswith("EXEC Queue"))
    assert [e.command for e in script.expects() if e.action == "AGI"] == [
        "EXEC Queue social_security"]
    emulator = Emulator(agi=AgiCaller(inputs=["3"]), seed=1)
    async with AmiStandIn([script], emulator=emulator) as server:
        client = await RawClient.connect(server.port)
        await client.banner()
        client.action("Login", "L", Username="hotline", Secret="s3cret")
        client.send(t.out_messages(1)[1].replace("menu-1-2", "qa"))  # the recorded QueueAdd
        seen = await client.until(is_event("AsyncAGIStart"))
        start_block = seen[-1].split("Linkedid: 1795313795.0\r\n")[0].split("Privilege: agi,all\r\n")[1]

        agi(client, "a1", "ANSWER", "my-1")
        answer = await client.until(is_event("AsyncAGIExec", CommandId="my-1"))
        assert "Response: Success\r\nActionID: a1\r\nMessage: Added AGI command to queue\r\n\r\n" in answer
        exec_start = next(m for m in answer if m.startswith("Event: AGIExecStart"))
        assert start_block in exec_start
        assert answer[-1].endswith("Result: 200%20result%3D0%0A\r\nCommandId: my-1\r\n\r\n")

        agi(client, "a2", "GET DATA beep 3000 1", "my-2")
        digits = await client.until(is_event("AsyncAGIExec", CommandId="my-2"))
        assert parse_message(digits[-1])["Result"] == "200%20result%3D3%0A"

        agi(client, "a3", "EXEC Queue social_security", "my-3")
        queued = await client.until(is_event("AsyncAGIExec"), timeout=3)
        assert "Response: Success\r\nActionID: a3\r\nMessage: Added AGI command to queue\r\n\r\n" in queued
        assert queued[-1].endswith("Result: 200%20result%3D-1%0A\r\nCommandId: my-3\r\n\r\n")
        client.action("Logoff", "bye")
        tail = (await client.read_to_eof()).decode()
        assert "ActionID: bye\r\nMessage: Thanks for all the fish." in tail
        await server.wait_script_done()
        everything = b"".join(client.reads).decode()
        assert "cmd-" not in everything and "menu-1-" not in everything
        assert emulator.agi_commands == [(CALLER, "ANSWER"), (CALLER, "GET DATA beep 3000 1")]
        assert server.unexpected == []


async def test_abandoned_call_is_byte_for_byte():
    t = Transcript.load("call-queue-abandoned.jsonl")
    async with AmiStandIn([t.connection(1)]) as server:
        client = await RawClient.connect(server.port)
        client.send(*t.out_messages(1))
        assert await client.read_to_eof() == t.in_bytes(1)
        await server.wait_script_done()


async def test_split_inside_wang_gives_two_reads():
    t = Transcript.load("call-queue-abandoned.jsonl")
    script = t.connection(1).split_inside("王")
    first = next(s for s in script if isinstance(s, Send) and s.data.endswith(b"\xe7\x8e"))
    assert first.pause_after == 0.05
    assert script.sent_bytes() == t.in_bytes(1)
    async with AmiStandIn([script]) as server:
        client = await RawClient.connect(server.port)
        client.send(*t.out_messages(1))
        data = await client.read_to_eof()
    cut = data.index("王".encode()) + 2
    boundaries, pos = set(), 0
    for chunk in client.reads:
        pos += len(chunk)
        boundaries.add(pos)
    assert cut in boundaries, "the client never saw E7 8E | 8B in two reads"
    assert data[cut - 2:cut + 1] == b"\xe7\x8e\x8b"


async def test_restart_refuses_connections_between_scripts():
    t = Transcript.load("asterisk-restart-midcall.jsonl")
    async with AmiStandIn([t.connection(1), t.connection(2)], refuse_between=0.5) as server:
        first = await RawClient.connect(server.port)
        first.send(*t.out_messages(1))
        data = await first.read_to_eof()
        shutdown = b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n"
        assert data.endswith(shutdown)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.sleep(0.6)
        second = await RawClient.connect(server.port)
        assert await second.banner() == BANNER
        second.send(*t.out_messages(2))
        rest = await second.read_to_eof()
        assert BANNER + rest == t.in_bytes(2)
        await server.wait_script_done()
        assert server.connections == 2


# -- emulator ----------------------------------------------------------------------
async def test_idle_asterisk_emulates_and_records_unexpected_actions():
    actions = Transcript.load("actions.jsonl")
    emulator = Emulator(variables={"CALL_ID": "1795313835.4"})
    emulator.lists["QueueStatus"] = recorded_list(actions, find_action_id(actions, "QueueStatus"))
    async with AmiStandIn([], emulator=emulator) as server:
        client = await RawClient.connect(server.port)
        assert await client.banner() == BANNER
        client.action("Ping", "early")
        assert "Message: Permission denied" in await client.message()
        client.action("Login", "l1", Username="hotline", Secret="anything")
        assert "Authentication accepted" in await client.message()
        assert (await client.message()).startswith("Event: FullyBooted\r\n")
        client.action("Getvar", "g1", Channel=CALLER, Variable="CALL_ID")
        assert await client.message() == ("Response: Success\r\nActionID: g1\r\n"
                                          "Variable: CALL_ID\r\nValue: 1795313835.4\r\n\r\n")
        client.action("Getvar", "g2", Channel=CALLER, Variable="NO_SUCH_VAR")
        assert (await client.message()).endswith("Variable: NO_SUCH_VAR\r\nValue: \r\n\r\n")
        client.action("QueueStatus", "qs")
        items = await client.until(is_event("QueueStatusComplete"))
        assert [parse_message(m).get("Event") for m in items[1:]] == [
            "QueueParams", "QueueMember", "QueueEntry", "QueueParams", "QueueStatusComplete"]
        assert all(m.endswith("ActionID: qs\r\n\r\n") for m in items[1:4])
        client.action("FooBar", "oops")
        assert await client.message() == (
            "Response: Error\r\nActionID: oops\r\nMessage: Invalid/unknown command: FooBar. "
            "Use Action: ListCommands to show available commands.\r\n\r\n")
        assert server.unexpected == [{"Action": "FooBar", "ActionID": "oops"}]
        client.action("Logoff", "x")
        assert "Response: Goodbye" in (await client.read_to_eof()).decode()


async def test_emulated_queues_add_pause_remove_and_list_as_app_queue_does():
    """QueueAdd / QueuePause / QueueRemove change the emulated members, each answered
    and announced with the captured texts (errors included), and QueueStatus lists
    what they made; a Redirect of a channel never seen is refused."""
    async with AmiStandIn([], emulator=Emulator(members=[])) as server:
        client = await RawClient.connect(server.port)
        await client.banner()
        client.action("Login", "l1", Username="hotline", Secret="x")
        await client.until(is_event("FullyBooted"))
        for queue, penalty in (("social_security", "0"), ("general_queue", "2")):
            client.action("QueueAdd", f"add-{queue}", Queue=queue, Interface="PJSIP/8001", Penalty=penalty,
                          Paused="false", MemberName="张三", StateInterface="PJSIP/8001")
            assert "Message: Added interface to queue" in await client.message()
            added = parse_message(await client.message())
            assert (added["Event"], added["Queue"], added["MemberName"], added["Penalty"]) == (
                "QueueMemberAdded", queue, "张三", penalty)
        client.action("QueueAdd", "again", Queue="general_queue", Interface="PJSIP/8001")
        assert await client.message() == (
            "Response: Error\r\nActionID: again\r\nMessage: Unable to add interface: Already there\r\n\r\n")
        client.action("QueuePause", "p", Interface="PJSIP/8001", Paused="true", Reason="午休")
        assert "Message: Interface paused successfully" in await client.message()
        pauses = [parse_message(await client.message()) for _ in range(2)]
        assert [(p["Event"], p["Queue"], p["Paused"], p["PausedReason"]) for p in pauses] == [
            ("QueueMemberPause", "social_security", "1", "午休"), ("QueueMemberPause", "general_queue", "1", "午休")]
        client.action("QueuePause", "nobody", Interface="PJSIP/8002", Paused="true")
        assert "Message: Interface not found" in await client.message()
        client.action("QueueRemove", "r1", Queue="social_security", Interface="PJSIP/8001")
        assert "Message: Removed interface from queue" in await client.message()
        assert parse_message(await client.message())["Event"] == "QueueMemberRemoved"
        client.action("QueueRemove", "r2", Queue="social_security", Interface="PJSIP/8001")
        assert "Message: Unable to remove interface: Not there" in await client.message()
        client.action("QueueStatus", "qs")
        listing = [parse_message(m) for m in await client.until(is_event("QueueStatusComplete"))]
        members = [(m["Queue"], m["Name"], m["Location"], m["Penalty"], m["Paused"], m["PausedReason"])
                   for m in listing if m.get("Event") == "QueueMember"]
        assert members == [("general_queue", "张三", "PJSIP/8001", "2", "1", "午休")]
        assert listing[-1]["ListItems"] == "3" and all(m.get("ActionID") == "qs" for m in listing)
        client.action("Redirect", "rd", Channel="PJSIP/9000-00000042", Context="x", Exten="8025", Priority="1")
        assert "Message: Channel does not exist: PJSIP/9000-00000042" in await client.message()
        assert server.unexpected == []


async def test_bad_secret_is_refused_after_a_second():
    async with AmiStandIn([], emulator=Emulator(secret="s3cret")) as server:
        client = await RawClient.connect(server.port)
        await client.banner()
        client.action("Login", "bad", Username="hotline", Secret="wrong")
        started = asyncio.get_running_loop().time()
        assert await client.read_to_eof() == (
            b"Response: Error\r\nActionID: bad\r\nMessage: Authentication failed\r\n\r\n")
        assert asyncio.get_running_loop().time() - started >= 0.95


async def test_asyncagi_break_barge_hangup_and_unknown_channel():
    t = Transcript.load("call-asyncagi-break-fallback.jsonl")
    channel = "PJSIP/9000-00000003"
    script = t.connection(1).without_agi(lambda c: True).until("Event: AsyncAGIStart")
    caller = AgiCaller(inputs=[Barge("3")], hangup_after=3)
    async with AmiStandIn([script], emulator=Emulator(agi=caller)) as server:
        client = await RawClient.connect(server.port)
        await client.banner()
        client.action("Login", "L", Username="hotline", Secret="s3cret")
        await client.until(is_event("AsyncAGIStart"))
        agi(client, "s", 'STREAM FILE hotline-welcome "123#"', "c1", channel)
        barge = await client.until(is_event("AsyncAGIExec", CommandId="c1"))
        assert parse_message(barge[-1])["Result"] == "200%20result%3D51%20endpos%3D1200%0A"
        agi(client, "f", "FLY AWAY", "c2", channel)
        bad = await client.until(is_event("AsyncAGIExec", CommandId="c2"))
        assert parse_message(bad[-1])["Result"] == "510%20Invalid%20or%20unknown%20command%0A"
        agi(client, "v", "SET VARIABLE HOTLINE_INTENT medical_insurance", "c3", channel)
        varset = await client.until(is_event("AsyncAGIExec", CommandId="c3"))
        assert any(is_event("VarSet", Variable="HOTLINE_INTENT", Value="medical_insurance")(
            parse_message(m)) for m in varset)
        agi(client, "h", "GET DATA beep 3000 1", "c4", channel)
        hung = await client.until(is_event("AsyncAGIExec", CommandId="c4"))
        assert parse_message(hung[-1])["Result"] == "200%20result%3D-1%0A"
        agi(client, "n", "ANSWER", "c5", "PJSIP/nobody-00000009")
        assert await client.message() == ("Response: Error\r\nActionID: n\r\n"
                                          "Message: Channel PJSIP/nobody-00000009 does not exist.\r\n\r\n")
    caller = AgiCaller()
    async with AmiStandIn([script], emulator=Emulator(agi=caller)) as server:
        client = await RawClient.connect(server.port)
        await client.banner()
        client.action("Login", "L", Username="hotline", Secret="s3cret")
        await client.until(is_event("AsyncAGIStart"))
        agi(client, "b", "ASYNCAGI BREAK", "brk", channel)
        end = await client.until(is_event("AsyncAGIEnd"))
        assert parse_message(end[-2])["Result"] == "200%20result%3D0%0A"
        assert parse_message(await client.message())["Variable"] == "AGISTATUS"
        agi(client, "late", "ANSWER", "c9", channel)
        assert "Message: Added AGI command to queue" in await client.message()
        with pytest.raises(asyncio.TimeoutError):
            await client.message(timeout=0.2)  # queued, but nothing runs it any more


# -- control and diagnostics ------------------------------------------------------------
async def test_wait_script_done_names_the_stuck_step():
    t = Transcript.load("ami-login-and-idle.jsonl")
    async with AmiStandIn([t.connection(1)]) as server:
        client = await RawClient.connect(server.port)
        await client.banner()
        client.action("Ping", "too-early")
        await client.message()
        with pytest.raises(ScriptNotDone) as failure:
            await server.wait_script_done(timeout=0.3)
    text = str(failure.value)
    assert "step 1/" in text and "Expect(Action: Login" in text
    assert "ActionID: too-early" in text


async def test_inject_go_silent_and_drop():
    t = Transcript.load("ami-login-and-idle.jsonl")
    async with AmiStandIn([t.connection(1).until("Event: FullyBooted")]) as server:
        client = await RawClient.connect(server.port)
        await client.banner()
        client.action("Login", "L", Username="hotline", Secret="s3cret")
        await client.message()
        await client.message()
        await server.wait_script_done()
        await server.inject(b"Event: Mystery\r\nPrivilege: all\r\n\r\n")
        assert await client.message() == "Event: Mystery\r\nPrivilege: all\r\n\r\n"
        server.go_silent()
        client.action("Ping", "p")
        with pytest.raises(asyncio.TimeoutError):
            await client.message(timeout=0.3)
        assert server.received[0][-1] == {"Action": "Ping", "ActionID": "p"}
        await server.drop()
        with pytest.raises((ConnectionResetError, AssertionError)):
            await client.message()


def test_script_edits_keep_the_original():
    t = Transcript.load("actions.jsonl")
    original = t.connection(1)
    edited = original.insert_raw(0, b"garbage line\r\n").split_inside("午休")
    assert len(original) == len(t.connection(1))
    assert len(edited) == len(original) + 2
    assert edited[1] == Send(b"garbage line\r\n", t=original[0].t)
    assert isinstance(original[1], Expect) and original[1].action == "Login"
    messages, rest = split_messages(original.sent_bytes())
    assert rest == b"" and len(messages) > 150


def test_substitution_keeps_chunk_boundaries_inside_a_split_header():
    table = IdTable()
    table.learn({"ActionID": "getvar-ticket"}, {"ActionID": "x"})
    chunks = [b"Response: Success\r\nActionID: getv", b"ar-ticket\r\nValue: 1\r\n\r\n",
              b"Event: X\r\nActionID: getvar-ticket-2\r\n\r\n"]
    out = substitute_chunks(chunks, table)
    assert b"".join(out) == (b"Response: Success\r\nActionID: x\r\nValue: 1\r\n\r\n"
                             b"Event: X\r\nActionID: getvar-ticket-2\r\n\r\n")
    assert len(out) == 3 and all(out)

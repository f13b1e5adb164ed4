"""A line break in an AMI header would split one action into two (header injection):
``request()`` refuses it before a byte is written, over the real TCP stand-in."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from ivr.ami import AmiConnection
from ivr.ami.errors import AmiBadAction, AmiError
from tests.standin import AmiStandIn

# A heartbeat Setvar whose value smuggles a second action behind a blank line.
INJECTED_VALUE = "1\r\n\r\nAction: Originate\r\nChannel: PJSIP/carrier/110\r\nApplication: System\r\nData: id"


async def _connected(settings, server: AmiStandIn) -> AmiConnection:
    # No keepalive during the test: every message the stand-in gets is ours.
    ami = AmiConnection(replace(settings.ami, port=server.port, ping_interval=3600))
    ami.connect()
    await ami.wait_logged_in(5)
    return ami


async def _quiet(server: AmiStandIn) -> int:
    """The number of messages the stand-in received, once nothing more is arriving."""
    count = -1
    while count != len(server.received[0]):
        count = len(server.received[0])
        await asyncio.sleep(0.05)
    return count


@pytest.mark.parametrize("action", [
    {"Action": "Setvar", "Variable": "HOTLINE_BRIDGE_HEARTBEAT", "Value": INJECTED_VALUE},
    {"Action": "Setvar", "Variable": "X\nAction: Command", "Value": "1"},                # LF only
    {"Action": "Setvar", "Variable": "X", "Value": "1\r"},                                # CR only
    {"Action": "Setvar", "Variable\r\nAction: Command": "X", "Value": "1"},               # in a key
    {"Action": "Originate", "Channel": "PJSIP/8001", "Variable": ["A=1", "B=2\r\nC: 3"]},  # repeated header
    {"Action": "Ping\r\n\r\nAction: Command\r\nCommand: core restart now"},               # the action name
])
async def test_a_line_break_is_refused_and_nothing_reaches_asterisk(settings, action):
    async with AmiStandIn([]) as server:
        ami = await _connected(settings, server)
        try:
            before = await _quiet(server)
            with pytest.raises(AmiBadAction, match="line break") as refused:
                await ami.request(action)
            assert isinstance(refused.value, AmiError)  # callers catching AmiError still do
            assert "\n" not in str(refused.value) and "\r" not in str(refused.value)
            assert await _quiet(server) == before
            assert not ami.protocol.responses  # nothing left waiting for an answer
            # Nothing was written, not even a fragment: the next action arrives as
            # exactly itself (a fragment would have been glued in front of it).
            pong = await ami.request({"Action": "Ping"})
            assert pong["Response"] == "Success"
            assert [sorted(m) for m in server.received[0][before:]] == [["Action", "ActionID"]]
            assert server.received[0][before]["Action"] == "Ping"
        finally:
            await ami.close()


async def test_the_refusal_comes_before_the_connection_check(settings):
    """Even with no connection the answer is the bad action, not 'not connected'."""
    ami = AmiConnection(settings.ami)
    with pytest.raises(AmiBadAction):
        await ami.request({"Action": "Setvar", "Variable": "X", "Value": "a\nb"})

"""Test-only Asterisk stand-in: replays real AMI captures over TCP.

Typical use::

    t = Transcript.load("call-menu-queue-answered.jsonl")
    server = AmiStandIn([t.connection(1)], emulator=Emulator(agi=AgiCaller(inputs=["3"])))
    await server.start()
    ...  # point the client under test at 127.0.0.1:server.port
    await server.wait_script_done()
    await server.stop()
"""

from .agi import AgiCaller, Barge
from .audiosocket import AudioSocketCaller, HangUp, Press, Quiet, Replay, Say
from .ami_server import AmiStandIn, ScriptNotDone
from .emulator import Emulator
from .recorded import find_action_id, recorded_event, recorded_list, recorded_response
from .script import Script, expect_of, sends_containing
from .steps import Close, Expect, Send
from .transcript import FIXTURES, Transcript

__all__ = [
    "AgiCaller", "AmiStandIn", "AudioSocketCaller", "Barge", "HangUp", "Press", "Quiet", "Replay", "Say", "Close", "Emulator", "Expect", "FIXTURES", "Script",
    "ScriptNotDone", "Send", "Transcript", "expect_of", "find_action_id", "recorded_event",
    "recorded_list", "recorded_response", "sends_containing",
]

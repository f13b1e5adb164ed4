"""Callers left in the menu when the service went away are sent to a person:
replays of real Asterisk 22 captures of `hotline serve` being killed (E5–E7)
and stopped (E8–E9), in tests/fixtures/asterisk/e2e/."""

from __future__ import annotations

import asyncio

from tests.bridge_harness import QUEUE_ADD_8006, bridge_on, ended_call, menu_call_script, timeline_detail
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AgiCaller, AmiStandIn, Emulator, Transcript
from tests.standin.agi import AgiOutcome
from tests.standin.framing import get_header

E2E = ASTERISK_FIXTURES / "e2e"
KILLED_CALL = "1796179014.0"


def agi_sent(server: AmiStandIn, conn: int = 0) -> list[tuple[str, str]]:
    return [(get_header(m, "Channel"), get_header(m, "Command"))
            for m in server.received[conn] if get_header(m, "Action") == "AGI"]


async def test_caller_whose_spoken_menu_died_is_rescued_although_the_listing_says_audiosocket(settings, db):
    """E6: after a kill during AudioSocket, CoreShowChannels still shows
    `Application: AudioSocket` (Asterisk publishes no snapshot when an app run by
    AGI EXEC returns) while the caller waits in AGI(agi:async). The new service
    must send them on, as it does for `Application: AGI`."""
    second_life = Transcript.load(E2E / "serve-killed-during-audiosocket.jsonl").connection(2)
    listing = [s for s in second_life.steps if b"Event: CoreShowChannel\r\n" in getattr(s, "data", b"")]
    assert b"Application: AudioSocket" in listing[0].data
    # Fact E6 of the capture: the AsyncAGI still waited for commands under the stale listing.
    emulator = Emulator(agi=AgiCaller(inputs=[]), agi_underneath=frozenset({"PJSIP/carrier-00000000"}))
    async with AmiStandIn([second_life], emulator=emulator) as server:
        async with bridge_on(server, settings, db) as core:
            call = await ended_call(db, KILLED_CALL, timeout=15)
            await core.settle()
    assert agi_sent(server) == [("PJSIP/carrier-00000000", "ASYNCAGI BREAK")]
    assert await timeline_detail(db, KILLED_CALL, "menu.rescued") == [
        {"reason": "menu session lost across a reconnect", "application": "AudioSocket"}]
    assert call["ended_at"] is not None


class SlowToAnswer(AgiCaller):
    """A caller who presses nothing: GET DATA runs its whole digit timeout."""

    def __init__(self, timeout: float):
        super().__init__(inputs=[])
        self.timeout = timeout
        self.waiting = asyncio.Event()

    def _get_data(self) -> AgiOutcome:
        async def digit_timeout() -> tuple[str, None]:
            self.waiting.set()
            await asyncio.sleep(self.timeout)
            return "200 result= (timeout)", None
        return AgiOutcome("", pending=digit_timeout())


async def test_stopping_retires_the_heartbeat_then_sends_menu_callers_to_a_person(settings, db):
    """E8: stopped with SIGTERM, the service used to send only Logoff; its heartbeat
    stayed fresh and the next caller entered a menu nobody drove (19 s of silence),
    and a caller in the menu waited until TIMEOUT(absolute). Now: heartbeat 0 first,
    then ASYNCAGI BREAK for every caller whose menu is running, then Logoff."""
    script = menu_call_script()
    caller = SlowToAnswer(timeout=0.5)
    emulator = Emulator(agi=caller)
    async with AmiStandIn([script], emulator=emulator) as server:
        async with bridge_on(server, settings, db) as core:
            await core.ami.request(QUEUE_ADD_8006)                # the capture's call starts after it
            await asyncio.wait_for(caller.waiting.wait(), 10)     # the caller is in GET DATA
        actions = [(get_header(m, "Action"), get_header(m, "Variable") or get_header(m, "Command"),
                    get_header(m, "Value")) for m in server.received[0]]
    heartbeat = settings.ami.heartbeat_variable
    ending = actions[actions.index(("Setvar", heartbeat, "0")):]
    assert [a[:2] for a in ending if a[0] != "Ping"] == [
        ("Setvar", heartbeat), ("AGI", "ASYNCAGI BREAK"), ("Logoff", "")]
    assert [c for _, c in emulator.agi_commands][-1] == "ASYNCAGI BREAK"   # it ran: AGI ended
    rescued = await timeline_detail(db, "1795313795.0", "menu.rescued")
    assert rescued == [{"reason": "the service is stopping"}]

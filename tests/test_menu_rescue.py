"""Callers left in the menu when the service went away are sent to a person:
replays of real Asterisk 22 captures of `hotline serve` being killed (E5–E7)
and stopped (E8–E9), in tests/fixtures/asterisk/e2e/."""

from __future__ import annotations

from tests.bridge_harness import bridge_on, ended_call, timeline_detail
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AgiCaller, AmiStandIn, Emulator, Transcript
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

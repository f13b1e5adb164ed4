"""The spoken menu, end to end over the real wire protocols:

captured Asterisk 22 AMI (stand-in) → our bridge → the menu's
``EXEC AudioSocket`` → the stand-in's AudioSocket caller connects to our real
AudioSocket server and speaks generated audio in 20 ms frames → real Vosk
(PyPI's Korean model: the only one on these machines) → the intent router →
``EXEC Queue`` over AMI, timeline and unplaced questions in a real PostgreSQL.

The router and the menu are the production ones; what is Korean is the test's
knowledge base (keywords the Korean model can hear) and the audio. The menu
listens with a grammar of the knowledge base's terms (``listen_grammar =
"knowledge"``), because the small Korean model cannot follow espeak-ng's Korean
in free speech (tests/data/audio/README.md).
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from asr.audio import read_pcm, write_wav
from asr.engine import bundled_test_model_path
from ivr.menu.voice import VoiceService
from routing.classifier import default_classifier
from tests.bridge_harness import (QUEUE_ADD_8006, bridge_on, call_row, ended_call, eventually, menu_call_script,
                                  timeline_detail, timeline_kinds)
from tests.conftest import ASTERISK_FIXTURES
from tests.failing_recognizer import failing_after
from tests.standin import (AgiCaller, AmiStandIn, AudioSocketCaller, Emulator, HangUp, Press, Quiet, Replay,
                           Say, Transcript)

AUDIO = Path(__file__).parent / "data" / "audio"
MENU_CALL = "1795313795.0"
SPEED = 2.0          # the caller's line runs at twice real time (Vosk does not care)
PROMPT_SECONDS = {"greeting": 3.0}      # the others 0.3 s


def audio(name: str) -> bytes:
    return read_pcm(AUDIO / "clean" / name)


def item(code: str, suffix: str, keywords: list[str], **extra) -> dict:
    return {"id": f"{code}.{suffix}", "question": f"{keywords[0]}?", "answer": f"{keywords[0]} answer",
            "procedure": [], "materials": [], "keywords": keywords, **extra}


ROUTE_KNOWLEDGE = {
    "social_security": [item("social_security", "pension", ["국민 연금"])],
    "tax": [item("tax", "filing", ["세금 신고"])],
    "household": [item("household", "passport", ["여권 발급"], self_service=True,
                       answer="办理护照请带身份证到市政务服务中心二楼出入境窗口，十个工作日出证。")],
}
# "국민 연금" heard as two departments' words equally: the menu must ask.
AMBIGUOUS_KNOWLEDGE = {
    "social_security": [item("social_security", "pension", ["연금"])],
    "medical_insurance": [item("medical_insurance", "national", ["국민"])],
    "tax": [item("tax", "filing", ["세금 신고"])],
}

# The same words the other way round: 연금 (named last) is medical insurance's.
OTHER_WAY_KNOWLEDGE = {
    "medical_insurance": [item("medical_insurance", "pension", ["연금"])],
    "social_security": [item("social_security", "national", ["국민"])],
    "tax": [item("tax", "filing", ["세금 신고"])],
}


def write_knowledge(folder: Path, knowledge: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for code, items in knowledge.items():
        (folder / f"{code}.json").write_text(json.dumps({"department": code, "items": items},
                                                         ensure_ascii=False), encoding="utf-8")
    return folder


def write_prompts(folder: Path, names) -> Path:
    """Recorded prompts: a tone each (the real ones are recordings or espeak-ng)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        seconds = PROMPT_SECONDS.get(name, 0.3)
        freq = 400 + 50 * index
        samples = [int(3000 * math.sin(2 * math.pi * freq * n / 8000)) for n in range(int(seconds * 8000))]
        write_wav(folder / f"{name}.wav", struct.pack(f"<{len(samples)}h", *samples))
    return folder


menu_script = menu_call_script


@pytest.fixture
def voice_settings(settings, tmp_path, monkeypatch):
    def make(knowledge: dict, **voice):
        monkeypatch.setenv("HOTLINE_KNOWLEDGE_DIR", str(write_knowledge(tmp_path / "knowledge", knowledge)))
        prompts = write_prompts(tmp_path / "prompts", settings.voice.prompts)
        return settings.with_overrides(
            # The caller's line runs at SPEED x real time, which the flood guard would
            # stop after a second; the guard has tests of its own (test_audiosocket_hostile).
            asr={"model_path": str(bundled_test_model_path()), "model_checksums": "", "workers": 2,
                 "audiosocket_port": 0, "max_audio_ahead": 600.0},
            voice={"audiosocket_address": "", "listen_grammar": "knowledge", "prompt_dir": prompts,
                   "answer_timeout": 2.0, "connect_timeout": 2.0, **voice})
    return make


@asynccontextmanager
async def voice_call(settings, db, caller: AudioSocketCaller, keys=(), script=None, before_call=None):
    """One call through the stand-in with the spoken menu running: yields
    (emulator, bridge, server) as the call starts (the capture waits for the
    QueueAdd). ``before_call(voice)`` runs once the service is up."""
    voice = await VoiceService.start(settings, db)
    assert voice is not None
    if before_call is not None:
        await before_call(voice)
    emulator = Emulator(agi=AgiCaller(inputs=list(keys), audiosocket=caller))
    try:
        async with AmiStandIn([script or menu_script()], emulator=emulator) as server:
            async with bridge_on(server, settings, db, listener=voice.menu) as bridge:
                await bridge.ami.request(QUEUE_ADD_8006)
                yield emulator, bridge, server
    finally:
        await voice.close()


def agi_commands(emulator) -> list[str]:
    return [command for _, command in emulator.agi_commands]


async def test_caller_says_what_they_need_and_is_queued(voice_settings, db):
    settings = voice_settings(ROUTE_KNOWLEDGE)
    caller = AudioSocketCaller([Say(audio("03-gukmin-yeongeum.wav"))], speed=SPEED)
    async with voice_call(settings, db, caller) as (emulator, bridge, server):
        call = await ended_call(db, MENU_CALL, timeout=30)
        await bridge.settle()
    assert server.unexpected == []

    sent = agi_sent(server)
    assert sent[0].startswith("EXEC AudioSocket ") and sent[0].endswith(f",127.0.0.1:{voice_port(sent[0])}")
    assert sent[1:] == ["SET VARIABLE HOTLINE_INTENT social_security",
                        "GET VARIABLE QUEUE_MEMBER(social_security,logged)", "SET VARIABLE TIMEOUT(absolute) 0",
                        "EXEC Queue social_security,c", "ASYNCAGI BREAK"]
    assert caller.ended_by == ["hangup_frame"]       # we let go of the caller: 00 00 00
    greeting = int(PROMPT_SECONDS["greeting"] * 16000)
    assert len(caller.prompt_audio) >= greeting       # heard the greeting, then the transfer prompt

    heard = await timeline_detail(db, MENU_CALL, "voice.heard")
    assert len(heard) == 1
    assert heard[0]["transcripts"] == ["국민 연금"]
    assert heard[0]["department"] == "social_security" and heard[0]["action"] == "route"
    assert heard[0]["reaction"] == "routed" and heard[0]["confidence"] >= 0.7
    assert heard[0]["partials"] and 0 <= heard[0]["decision_ms"] < 1000
    model = default_classifier().info   # which trained model decided, and on what data
    assert heard[0]["model"]["version"] == model.version
    assert heard[0]["model"]["corpus"] == model.corpus_hash[:12]
    routed = await timeline_detail(db, MENU_CALL, "menu.routed")
    assert routed == [{"department": "social_security", "queue": "social_security", "reason": "speech"}]
    kinds = await timeline_kinds(db, MENU_CALL)
    assert kinds.index("voice.started") < kinds.index("voice.heard") < kinds.index("voice.ended")
    assert kinds.index("voice.ended") < kinds.index("menu.routed") < kinds.index("agent.connected")
    assert "menu.greeting" not in kinds               # the keypad greeting was not needed
    assert call["outcome"] == "answered" and call["department"] == "social_security"


def voice_port(command: str) -> str:
    return command.rpartition(":")[2]


def agi_sent(server) -> list[str]:
    """Every AGI command our menu sent over AMI (emulated or matched to the capture)."""
    return [m["Command"] for m in server.received[0] if m.get("Action") == "AGI"]


async def test_talking_over_the_greeting_stops_it_and_an_unsure_match_is_confirmed_by_key(voice_settings, db):
    settings = voice_settings(AMBIGUOUS_KNOWLEDGE)
    caller = AudioSocketCaller([Quiet(0.4), Say(audio("03-gukmin-yeongeum.wav"), over_prompt=True),
                                Press("1")], speed=SPEED)
    async with voice_call(settings, db, caller) as (emulator, bridge, server):
        call = await ended_call(db, MENU_CALL, timeout=30)
        await bridge.settle()

    # The greeting (3 s) was cut short by the caller's voice.
    greeting_bytes = int(PROMPT_SECONDS["greeting"] * 16000)
    heard_before_confirming = caller.prompt_bytes_at_turn[2]
    assert heard_before_confirming < greeting_bytes
    heard = await timeline_detail(db, MENU_CALL, "voice.heard")
    assert [h["action"] for h in heard] == ["confirm"]
    assert heard[0]["department"] == "social_security" and 0.4 <= heard[0]["confidence"] < 0.7
    assert heard[0]["runner_up"]["department"] == "medical_insurance"
    assert heard[0]["reaction"] == "confirmed_yes"
    confirm = await timeline_detail(db, MENU_CALL, "voice.confirm")
    assert confirm == [{"department": "social_security", "transcript": None, "key": "1", "answer": "yes",
                        "turn": 1}]
    assert "EXEC Queue social_security,c" in agi_sent(server)
    assert call["department"] == "social_security"


async def test_a_no_to_the_confirmation_offers_the_other_department_named(voice_settings, db):
    """Two departments' words heard (국민, 연금), the one named last confirmed
    first; the caller presses 2 (no), the menu offers the other one named instead
    of starting over, and the caller's 1 queues them there."""
    settings = voice_settings(OTHER_WAY_KNOWLEDGE)
    caller = AudioSocketCaller([Quiet(0.4), Say(audio("03-gukmin-yeongeum.wav"), over_prompt=True),
                                Press("2"), Press("1")], speed=SPEED)
    async with voice_call(settings, db, caller) as (emulator, bridge, server):
        call = await ended_call(db, MENU_CALL, timeout=30)
        await bridge.settle()
    assert server.unexpected == []

    heard = await timeline_detail(db, MENU_CALL, "voice.heard")
    assert [h["action"] for h in heard] == ["confirm"]
    assert heard[0]["department"] == "medical_insurance" and heard[0]["alternative"] == "social_security"
    assert heard[0]["reaction"] == "confirmed_alternative"
    confirm = await timeline_detail(db, MENU_CALL, "voice.confirm")
    assert confirm == [
        {"department": "medical_insurance", "transcript": None, "key": "2", "answer": "no", "turn": 1},
        {"department": "social_security", "transcript": None, "key": "1", "answer": "yes", "turn": 1,
         "alternative": True}]
    sent = agi_sent(server)
    assert "EXEC Queue social_security,c" in sent and "EXEC Queue medical_insurance,c" not in sent
    assert call["department"] == "social_security"


async def test_unplaced_speech_is_reprompted_kept_for_editors_then_the_keypad(voice_settings, db):
    """혼인 신고 (marriage registration) is in nobody's keywords: the menu asks
    once more, the caller says it again, and the keypad menu takes over. What
    was heard is kept for the knowledge-base editors."""
    settings = voice_settings(ROUTE_KNOWLEDGE)
    phrase = audio("09-honin-singo.wav")
    caller = AudioSocketCaller([Say(phrase), Say(phrase)], speed=SPEED)
    async with voice_call(settings, db, caller, keys=["3"]) as (emulator, bridge, server):
        call = await ended_call(db, MENU_CALL, timeout=30)
        await bridge.settle()

    heard = await timeline_detail(db, MENU_CALL, "voice.heard")
    assert [(h["action"], h["reaction"]) for h in heard] == [("reprompt", "reprompted"), ("keypad", "keypad")]
    assert all(h["department"] is None and h["confidence"] < 0.4 for h in heard)
    transcripts = [h["transcripts"][0] for h in heard if h["transcripts"] and h["transcripts"][0]]
    assert transcripts, "the recogniser heard words the router could not place"
    sent = agi_sent(server)
    assert sent[1] == "GET DATA hotline/menu-main 5000 1"     # straight on to the keypad menu
    assert (await timeline_detail(db, MENU_CALL, "menu.key"))[0]["key"] == "3"
    assert call["department"] == "social_security"

    async def stored():
        async with db.acquire() as conn:
            rows = await conn.fetch("SELECT text, linkedid, decision FROM unplaced_questions ORDER BY id")
        return rows if len(rows) == len(transcripts) else None
    rows = await eventually(stored, 5, "the unplaced questions to be stored")
    assert [r["text"] for r in rows] == transcripts
    assert {r["linkedid"] for r in rows} == {MENU_CALL}
    assert json.loads(rows[0]["decision"])["action"] == "reprompt"


async def test_a_key_during_the_spoken_menu_goes_to_the_keypad_menu(voice_settings, db):
    settings = voice_settings(ROUTE_KNOWLEDGE)
    caller = AudioSocketCaller([Press("3", over_prompt=True)], speed=SPEED)
    async with voice_call(settings, db, caller) as (emulator, bridge, server):
        call = await ended_call(db, MENU_CALL, timeout=30)
        await bridge.settle()
    keys = await timeline_detail(db, MENU_CALL, "voice.key")
    assert keys == [{"key": "3", "reaction": "keypad"}]
    menu_keys = await timeline_detail(db, MENU_CALL, "menu.key")
    assert menu_keys == [{"menu": "main", "key": "3", "decision": "route"}]
    assert agi_commands(emulator)[1:4] == ["SET VARIABLE HOTLINE_INTENT social_security",
                                           "GET VARIABLE QUEUE_MEMBER(social_security,logged)",
                                           "SET VARIABLE TIMEOUT(absolute) 0"]
    assert call["department"] == "social_security"


async def test_no_recogniser_free_means_the_keypad_menu_with_its_greeting(voice_settings, db):
    settings = voice_settings(ROUTE_KNOWLEDGE)
    settings = settings.with_overrides(asr={"max_streams": 1})
    async def take_the_only_recogniser(voice):
        await voice.pool.open_stream("another-call")

    caller = AudioSocketCaller([], speed=SPEED)
    async with voice_call(settings, db, caller, keys=["3"],
                          before_call=take_the_only_recogniser) as (emulator, bridge, server):
        call = await ended_call(db, MENU_CALL, timeout=30)
        await bridge.settle()
    failed = await timeline_detail(db, MENU_CALL, "voice.failed")
    assert failed == [{"reason": "unavailable", "reaction": "keypad_greeting"}]
    assert agi_sent(server)[1].startswith("STREAM FILE hotline/welcome")
    assert call["department"] == "social_security"


async def test_audiosocket_that_cannot_connect_leaves_the_caller_to_the_dialplan(voice_settings, db, caplog):
    """Asterisk cannot reach our AudioSocket server: AudioSocket() fails with -1,
    res_agi ends the AGI session after a failed command (AGISTATUS=FAILURE) and
    the dialplan's next step, the general queue, takes the caller. The menu must
    log it, record it, and send nothing more on a session that is over."""
    settings = voice_settings(ROUTE_KNOWLEDGE)
    caller = AudioSocketCaller([], refuse=True)
    async with voice_call(settings, db, caller) as (emulator, bridge, server):
        async def failed():
            return await timeline_detail(db, MENU_CALL, "voice.failed")
        rows = await eventually(failed, 30, "the failure to be recorded")
        await bridge.settle()
    assert rows[0]["reason"] == "audiosocket_failed" and rows[0]["reaction"] == "dialplan_fallback"
    assert "voice.audiosocket_failed" in caplog.text
    assert len(agi_sent(server)) == 1 and agi_sent(server)[0].startswith("EXEC AudioSocket")
    assert "menu.caller_left" not in await timeline_kinds(db, MENU_CALL)


async def test_caller_hanging_up_mid_sentence_ends_the_menu_quietly(voice_settings, db):
    settings = voice_settings(ROUTE_KNOWLEDGE)
    caller = AudioSocketCaller([Say(audio("03-gukmin-yeongeum.wav")[:4000]), HangUp()], speed=SPEED)
    async with voice_call(settings, db, caller) as (emulator, bridge, server):
        async def left():
            return "menu.caller_left" in await timeline_kinds(db, MENU_CALL)
        await eventually(left, 30, "the menu to see the caller leave")
    assert caller.ended_by == ["caller"]
    assert agi_commands(emulator) == [agi_commands(emulator)[0]]   # nothing sent after the EXEC


async def test_recogniser_failing_mid_call_sends_the_caller_to_the_keypad(voice_settings, db):
    """Vosk raises while the greeting plays: the caller gets the keypad menu, not silence."""
    from asr.audiosocket import AudioSocketServer
    from asr.engine import RecognizerPool
    from routing import Knowledge
    from ivr.menu.prompts import PromptLibrary
    from ivr.menu.voice import VoiceMenu

    settings = voice_settings(ROUTE_KNOWLEDGE)
    # fails once given 0.5 s of audio
    pool = await RecognizerPool.start(settings.asr, recognizer_factory=failing_after(8000))
    server = AudioSocketServer(settings.asr, pool)
    await server.start()
    menu = VoiceMenu(settings, server, Knowledge.from_files(None, settings), PromptLibrary(settings.voice))
    caller = AudioSocketCaller([Say(audio("03-gukmin-yeongeum.wav"))], speed=SPEED)
    emulator = Emulator(agi=AgiCaller(inputs=["3"], audiosocket=caller))
    try:
        async with AmiStandIn([menu_script()], emulator=emulator) as ami:
            async with bridge_on(ami, settings, db, listener=menu) as bridge:
                await bridge.ami.request(QUEUE_ADD_8006)
                call = await ended_call(db, MENU_CALL, timeout=30)
                await bridge.settle()
    finally:
        await server.close()
        await pool.close()
    failed = await timeline_detail(db, MENU_CALL, "voice.failed")
    assert failed == [{"reason": "recognizer_error", "reaction": "keypad"}]
    assert agi_sent(ami)[1] == "GET DATA hotline/menu-main 5000 1"
    assert caller.ended_by == ["hangup_frame"]
    assert call["department"] == "social_security"


async def test_without_a_model_the_service_runs_keypad_only(settings, db, tmp_path, caplog):
    assert await VoiceService.start(settings.with_overrides(asr={"model_path": ""}), db) is None
    assert "no speech model configured" in caplog.text
    broken = tmp_path / "model"
    (broken / "am").mkdir(parents=True)
    assert await VoiceService.start(settings.with_overrides(asr={"model_path": str(broken)}), db) is None
    assert "speech model unusable" in caplog.text and str(broken) in caplog.text


async def test_a_self_service_answer_that_settles_the_question_ends_the_call(voice_settings, db):
    """여권 발급 (passport) is a self-service item: the menu speaks its answer
    (espeak-ng), asks whether there is anything else, hears nothing, says
    goodbye and hangs up: the call was resolved by the menu."""
    settings = voice_settings(ROUTE_KNOWLEDGE)
    caller = AudioSocketCaller([Say(audio("04-yeogwon-balgeup.wav"))], speed=SPEED)
    async with voice_call(settings, db, caller) as (emulator, bridge, server):
        async def resolved():
            return await timeline_detail(db, MENU_CALL, "menu.resolved")
        await eventually(resolved, 40, "the menu to settle the call")
        await bridge.settle()
    heard = await timeline_detail(db, MENU_CALL, "voice.heard")
    assert heard[0]["action"] == "self_service" and heard[0]["item"] == "household.passport"
    assert heard[0]["reaction"] == "played_answer"
    assert heard[1] == {"transcripts": [], "reaction": "goodbye", "after_answer": True}
    ended = await timeline_detail(db, MENU_CALL, "voice.ended")
    assert ended[0]["outcome"] == "resolved"
    assert agi_sent(server)[1:] == ["HANGUP"]
    answer_seconds = (len(caller.prompt_audio) - caller.prompt_bytes_at_turn[0]) / 16000
    assert answer_seconds > 3          # the spoken answer, the follow-up and the goodbye


def dominant_hz(pcm: bytes, rate: int = 8000) -> float:
    """The frequency of a pure tone, from its zero crossings."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2])
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / rate)


async def test_the_operator_key_is_announced_as_the_spoken_request_is(voice_settings, db):
    """Issue 9, item 6: key 0 during the spoken menu reaches a person with the same
    "正在为您转接人工服务" the words get, not in silence."""
    settings = voice_settings(ROUTE_KNOWLEDGE)
    caller = AudioSocketCaller([Press("0", over_prompt=True)], speed=SPEED)
    async with voice_call(settings, db, caller) as (emulator, bridge, server):
        # The capture goes on to its own queue call; this caller leaves it at the BREAK.
        await eventually(lambda: _sent_break(emulator), 30, "ASYNCAGI BREAK")
        await bridge.settle()
    assert await timeline_detail(db, MENU_CALL, "voice.key") == [{"key": "0", "reaction": "operator"}]
    # Each prompt is a tone of its own (write_prompts); the last one heard is the operator's.
    names = list(settings.voice.prompts)
    operator_hz = 400 + 50 * names.index("operator")
    tail = bytes(caller.prompt_audio[-int(0.2 * 16000):])
    assert abs(dominant_hz(tail) - operator_hz) < 15, dominant_hz(tail)
    assert agi_commands(emulator)[-1] == "ASYNCAGI BREAK"     # the general queue, through the dialplan


async def _sent_break(emulator) -> bool:
    return "ASYNCAGI BREAK" in agi_commands(emulator)


# ----- prompts that cannot be played (issue 9, item 1) ----------------------------------

E2E = ASTERISK_FIXTURES / "e2e"
E3_CALL = "1796177016.3"


async def test_hash_into_a_keypad_menu_without_sound_files_still_reaches_a_person(voice_settings, db, caplog):
    """E3, replayed: the caller presses # during the spoken greeting (the captured
    AudioSocket bytes, with this call's UUID), the menu hangs up the AudioSocket and
    runs GET DATA hotline/menu-main, which Asterisk answers 200 result=-1 because the
    file is missing, and the AGI session stays open. It used to be taken for a
    hang-up: 20 s of silence until the caller gave up."""
    settings = voice_settings(ROUTE_KNOWLEDGE, answer_timeout=8.0)
    script = Transcript.load(E2E / "voice-get-data-missing-prompt.jsonl").connection(1)
    # The recorded EXEC AudioSocket named that run's UUID and port; ours goes to the stand-in's caller.
    script = script.without_agi(lambda command: command.startswith("EXEC AudioSocket"))
    caller = AudioSocketCaller([Replay.capture(E2E / "voice-get-data-missing-prompt.as1.in.bin")], speed=SPEED)
    emulator = Emulator(agi=AgiCaller(audiosocket=caller))
    voice = await VoiceService.start(settings, db)
    try:
        async with AmiStandIn([script], emulator=emulator) as server:
            async with bridge_on(server, settings, db, listener=voice.menu) as bridge:
                async def routed():
                    return await timeline_detail(db, E3_CALL, "menu.routed")
                assert await eventually(routed, 30, "the caller to be sent on") == [
                    {"department": "general", "queue": "general_queue", "reason": "prompt_failed"}]
                await bridge.settle()
                call = await call_row(db, E3_CALL)
    finally:
        await voice.close()
    sent = agi_sent(server)
    assert sent[0].startswith("EXEC AudioSocket ")
    assert sent[1:] == ["GET DATA hotline/menu-main 5000 1", "CHANNEL STATUS", "SET VARIABLE HOTLINE_INTENT general",
                        "ASYNCAGI BREAK"]
    assert caller.ended_by == ["hangup_frame"]
    assert await timeline_detail(db, E3_CALL, "voice.key") == [{"key": "#", "reaction": "keypad"}]
    failed = await timeline_detail(db, E3_CALL, "menu.prompt_failed")
    assert [(f["prompt"], f["command"], f["reaction"]) for f in failed] == [
        ("hotline/menu-main", "GET DATA", "fallback_queue")]
    assert "menu.caller_left" not in await timeline_kinds(db, E3_CALL)
    assert call["department"] == "general"
    assert "menu.prompt_failed" in caplog.text


async def test_spoken_prompts_that_cannot_be_made_and_missing_keypad_files_still_reach_a_person(
        voice_settings, db, caplog):
    """No usable greeting (a broken recording, no synthesiser): the spoken menu
    gives way to the keypad menu; its sound files are missing too (GET DATA
    answers 200 result=-1 as in E2, the session stays open): a person."""
    settings = voice_settings(ROUTE_KNOWLEDGE, tts_command="")
    (settings.voice.prompt_dir / "greeting.wav").write_bytes(b"RIFF\x00\x00\x00\x00not a wave file")
    caller = AudioSocketCaller([], speed=SPEED)
    emulator = Emulator(agi=AgiCaller(audiosocket=caller, missing={"hotline/menu-main"}))
    voice = await VoiceService.start(settings, db)
    try:
        async with AmiStandIn([menu_script()], emulator=emulator) as server:
            async with bridge_on(server, settings, db, listener=voice.menu) as bridge:
                await bridge.ami.request(QUEUE_ADD_8006)
                await eventually(lambda: _sent_break(emulator), 30, "ASYNCAGI BREAK")
                await bridge.settle()
    finally:
        await voice.close()
    assert "voice.prompt_recording_unusable" in caplog.text
    failed = await timeline_detail(db, MENU_CALL, "voice.failed")
    assert [f["reason"] for f in failed] == ["prompt_unavailable"]
    assert caller.ended_by == ["hangup_frame"]
    assert agi_commands(emulator)[1:] == ["GET DATA hotline/menu-main 5000 1", "CHANNEL STATUS",
                                          "SET VARIABLE HOTLINE_INTENT general", "ASYNCAGI BREAK"]
    routed = await timeline_detail(db, MENU_CALL, "menu.routed")
    assert routed == [{"department": "general", "queue": "general_queue", "reason": "prompt_failed"}]


# ----- speech at the edges of a turn (issue 9, item 6) ----------------------------------

async def test_a_caller_still_talking_when_the_answer_time_ends_is_heard_out(voice_settings, db):
    """The caller starts answering late: when answer_timeout ends they are mid-word
    (the recogniser has partial results). Their words used to be thrown away
    (voice.heard: no words, partials with text) and turned up in the next turn;
    now the menu waits for the end of the sentence and acts on it."""
    # Spoken at real speed, starting 0.25 s after the greeting: 1.45 s of speech,
    # partial results from about 0.5 s on, the endpoint 0.5-1 s after the speech
    # (2.2 s at the earliest). The answer's time ends at 1.7 s, in the middle.
    settings = voice_settings(ROUTE_KNOWLEDGE, answer_timeout=1.7)
    caller = AudioSocketCaller([Say(audio("03-gukmin-yeongeum.wav"))], speed=1.0)
    async with voice_call(settings, db, caller) as (emulator, bridge, server):
        call = await ended_call(db, MENU_CALL, timeout=30)
        await bridge.settle()
    heard = await timeline_detail(db, MENU_CALL, "voice.heard")
    assert [(h["transcripts"], h["reaction"]) for h in heard] == [(["국민 연금"], "routed")]
    assert heard[0]["answer_overrun"] == "finished" and heard[0]["partials"]
    assert call["department"] == "social_security"


@asynccontextmanager
async def listening_to(settings, caller: AudioSocketCaller, grammar: list[str]):
    """The spoken menu's listening on its own: a real AudioSocket server and Vosk,
    the stand-in's caller connected as Asterisk's AudioSocket() would; yields
    (session, prompts)."""
    from asr.audiosocket import AudioSocketServer
    from asr.engine import RecognizerPool
    from ivr.menu.prompts import PromptLibrary

    pool = await RecognizerPool.start(settings.asr)
    server = AudioSocketServer(settings.asr, pool)
    await server.start()
    call_uuid = uuid.uuid4()
    session = server.session(call_uuid, grammar=grammar)
    line = asyncio.create_task(caller.run(f"{call_uuid},127.0.0.1:{server.port}"))
    try:
        assert await session.wait_connected(5)
        yield session, PromptLibrary(settings.voice)
        await session.hangup()
        await asyncio.wait_for(line, 10)
    finally:
        line.cancel()
        await server.close()
        await pool.close()


GRAMMAR = ["건강 보험", "국민 연금", "세금 신고", "여권 발급", "[unk]"]


async def test_each_turn_starts_from_a_clean_recogniser(voice_settings):
    """The caller is halfway through "여권 발급" when a key ends the turn; the next
    turn must hear only what is said in it ("세금 신고"). The first turn's words
    used to stay in the recogniser and begin the second turn's partial and final
    results (measured: "보험 연금"; with Vosk's Reset() alone, too)."""
    from ivr.menu.voice.listening import HeardKind, ask

    half_a_phrase = audio("04-yeogwon-balgeup.wav")[:int(0.8 * 16000)]
    caller = AudioSocketCaller([Say(half_a_phrase, over_prompt=True), Press("1", over_prompt=True),
                                Say(audio("01-segeum-singo.wav"))], speed=SPEED)
    timing = {"answer_timeout": 2.0, "answer_overrun": 5.0}
    async with listening_to(voice_settings(ROUTE_KNOWLEDGE), caller, GRAMMAR) as (session, prompts):
        first = await ask(session, prompts, "greeting", {}, **timing)
        assert (first.kind, first.key) == (HeardKind.KEY, "1")
        second = await ask(session, prompts, "reprompt", {}, **timing)
    assert (second.kind, second.text) == (HeardKind.SPEECH, "세금 신고"), second
    assert not any("여권" in partial for partial in second.partials), second.partials


async def test_a_caller_who_talks_on_past_the_overrun_is_taken_at_their_words(voice_settings):
    """Still talking when answer_overrun runs out as well: what was said so far is
    the answer (the recogniser's final result for it), not silence."""
    from ivr.menu.voice.listening import HeardKind, Overrun, ask

    phrase = audio("03-gukmin-yeongeum.wav")[:int(1.45 * 16000)]        # without its trailing silence
    caller = AudioSocketCaller([Say(phrase + phrase + phrase)], speed=1.0)   # 4.4 s without a pause
    async with listening_to(voice_settings(ROUTE_KNOWLEDGE), caller, GRAMMAR) as (session, prompts):
        # The 3 s greeting warms the new recogniser up (its first second of audio costs more).
        heard = await ask(session, prompts, "greeting", {}, answer_timeout=1.5, answer_overrun=1.0)
    assert heard.kind is HeardKind.SPEECH and heard.overrun is Overrun.CUT, heard
    assert heard.text.startswith("국민"), heard

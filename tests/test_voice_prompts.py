"""Prompt audio for the spoken menu: recordings first, espeak-ng otherwise,
and a clear failure when neither exists."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace

import pytest

from asr.audio import write_wav
from hotline.settings import SettingsError, load_settings
from ivr.menu.prompts import PromptLibrary, PromptUnavailable
from sounds.texts import sound_texts


@pytest.fixture
def voice(tmp_path):
    return replace(load_settings(env={}).voice, prompt_dir=tmp_path)


async def test_a_recording_wins_over_synthesis(voice, tmp_path):
    write_wav(tmp_path / "greeting.wav", b"\x01\x02" * 800)
    write_wav(tmp_path / "confirm-tax.wav", b"\x03\x04" * 400)
    library = PromptLibrary(replace(voice, tts_command=""))
    assert await library.prompt("greeting") == b"\x01\x02" * 800
    assert await library.prompt("confirm", department="税务", code="tax") == b"\x03\x04" * 400


async def test_prompts_without_recordings_are_spoken_at_8_khz(voice):
    library = PromptLibrary(voice)
    pcm = await library.prompt("confirm", department="住房公积金", code="housing_fund")
    assert len(pcm) % 2 == 0 and 1.5 < len(pcm) / 16000 < 20     # seconds of 8 kHz s16
    assert max(abs(int.from_bytes(pcm[i:i + 2], "little", signed=True)) for i in range(0, len(pcm), 2)) > 1000
    assert await library.prompt("confirm", department="住房公积金", code="housing_fund") is pcm   # cached


async def test_no_recording_and_no_synthesiser_is_a_clear_error(voice):
    library = PromptLibrary(replace(voice, tts_command="no-such-tts"))
    with pytest.raises(PromptUnavailable, match="no-such-tts.*not installed"):
        await library.prompt("greeting")


async def test_a_broken_recording_is_reported_and_synthesis_takes_over(voice, tmp_path, caplog):
    (tmp_path / "goodbye.wav").write_bytes(b"not a wav file")
    library = PromptLibrary(replace(voice, tts_command="no-such-tts"))
    with pytest.raises(PromptUnavailable):
        await library.prompt("goodbye")
    assert "voice.prompt_recording_unusable" in caplog.text


def test_voice_settings_are_checked(tmp_path):
    base = (load_settings(env={}).source).read_text(encoding="utf-8")
    bad = tmp_path / "hotline.toml"
    bad.write_text(base.replace('listen_grammar = "free"', 'listen_grammar = "sometimes"'), encoding="utf-8")
    with pytest.raises(SettingsError, match="listen_grammar"):
        load_settings(bad, env={})
    bad.write_text(base.replace('goodbye = "', 'farewell = "'), encoding="utf-8")
    with pytest.raises(SettingsError, match=r"\[voice.prompts\] is missing goodbye"):
        load_settings(bad, env={})
    bad.write_text(base.replace('audiosocket_address = "127.0.0.1:9092"', 'audiosocket_address = "nowhere"'),
                   encoding="utf-8")
    with pytest.raises(SettingsError, match="host:port"):
        load_settings(bad, env={})
    settings = load_settings(env={"HOTLINE_ASR_MODEL_PATH": "/models/cn",
                                  "HOTLINE_AUDIOSOCKET_ADDRESS": "hotline:9092"})
    assert settings.asr.model_path == "/models/cn" and settings.voice.audiosocket_address == "hotline:9092"
    from asr.engine.model import checksum_file
    assert checksum_file(settings.asr.model_checksums).exists()
    assert str(checksum_file(settings.asr.model_checksums)).endswith(
        "asr/engine/checksums/vosk-model-small-cn-0.22.sha256")
    other = load_settings(env={"HOTLINE_ASR_MODEL_PATH": "/models/other", "HOTLINE_ASR_MODEL_CHECKSUMS": ""})
    assert other.asr.model_checksums == ""
    assert settings.voice.prompt_dir == settings.source.parent / "prompts"


def test_the_voice_reads_our_mandarin_as_mandarin() -> None:
    """Debian 12's espeak-ng 1.51 `cmn` voice turns a character into pinyin with a tone
    digit and reads that with its English rules ("您好" -> "nin two hao three"); the
    configured voice must read every text the hotline speaks with Mandarin rules."""
    settings = load_settings(env={})
    department = settings.departments[0].name
    spoken_texts = list(sound_texts(settings).values()) + [
        text.format(department=department) for text in settings.voice.prompts.values()]
    phonemes = subprocess.run([settings.voice.tts_command, "-v", settings.voice.tts_voice, "-x", "-q", "--stdin"],
                              input="\n".join(spoken_texts).encode(), capture_output=True, check=True).stdout.decode()
    assert "(en)" not in phonemes
    assert len(re.findall(r"\d{2,3}", phonemes)) > 300          # tone marks: syllables said with tones

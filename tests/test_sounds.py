"""The sounds Asterisk plays: `hotline prompts build` makes every file the keypad
menu, the dialplan and app_queue (with our queues.conf) play, in Mandarin for the
callers' language, plus the hold music, and the deployment puts them where Asterisk
looks. Which files are needed is read from the configuration; the captures of a real
Asterisk 22 (tests/fixtures/asterisk/e2e/*.asterisk.log) say which files it asked for.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import wave
from array import array
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Callable

import pytest
import yaml

from asr.audio import read_pcm, write_wav
from hotline.asterisk.parse import parse_file
from hotline.asterisk.secrets import write_secrets
from hotline.cli import main
from hotline.settings import Settings, SettingsError, load_settings
from sounds.build import BuildError, build
from sounds.music import PIECES
from sounds.numbers import ZH_NUMBER_WORDS, spoken, zh_number_files
from sounds.synth import Espeak
from sounds.texts import KEY_WORDS, keypad_prompt, sound_texts
from sounds.usage import required_sounds
from tests.conftest import ASTERISK_FIXTURES

REPO = Path(__file__).resolve().parent.parent
E2E = ASTERISK_FIXTURES / "e2e"


def config_copy(tmp_path: Path, toml: Callable[[str], str] = lambda t: t,
                **conf: Callable[[str], str]) -> Settings:
    """The repository's config/ in ``tmp_path`` (hotline.toml, asterisk/, an empty
    prompts/), with edits: ``toml`` for hotline.toml, ``extensions_conf=...`` etc."""
    root = tmp_path / "config"
    shutil.copytree(REPO / "config" / "asterisk", root / "asterisk", ignore=shutil.ignore_patterns("secrets"))
    (root / "prompts").mkdir()
    text = (REPO / "config" / "hotline.toml").read_text(encoding="utf-8")
    (root / "hotline.toml").write_text(toml(text), encoding="utf-8")
    for name, edit in conf.items():
        path = root / "asterisk" / name.replace("_conf", ".conf")
        before = path.read_text(encoding="utf-8")
        assert edit(before) != before, name
        path.write_text(edit(before), encoding="utf-8")
    settings = load_settings(root / "hotline.toml", env={})
    write_secrets(settings, root / "asterisk" / "secrets", {"HOTLINE_AMI_SECRET": "test-ami-secret-0123456789"})
    return settings


def names(settings: Settings) -> list[str]:
    return [n.name for n in required_sounds(settings, settings.asterisk_dir)]


def wav_facts(path: Path) -> tuple[tuple[int, int, int], float, float, int]:
    """(channels, sample width, rate), seconds, RMS in dBFS, clipped samples."""
    with wave.open(str(path), "rb") as wav:
        fmt = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        samples = array("h", wav.readframes(wav.getnframes()))
    rms = math.sqrt(sum(s * s for s in samples) / max(1, len(samples))) / 32768
    return fmt, len(samples) / fmt[2], 20 * math.log10(max(rms, 1e-9)), sum(abs(s) >= 32767 for s in samples)


# --------------------------------------------------------------------------- what is needed


def test_mandarin_numbers_are_said_as_asterisks_say_c_says_them() -> None:
    assert [spoken(n) for n in (0, 2, 10, 15, 20, 21, 100, 105, 1005, 1050, 12345, -3)] == [
        "零", "二", "十", "十五", "二十", "二十一", "一百", "一百零五", "一千零五", "一千零五十",
        "一万二千三百四十五", "负三"]
    assert zh_number_files(105) == ["digits/1", "digits/hundred", "digits/0", "digits/5"]
    assert zh_number_files(1_000_000_000) == []          # "too big for me": nothing is said
    used = {f for n in [*range(-20, 30000), 100_000_000, 999_999_999] for f in zh_number_files(n)}
    assert used == set(ZH_NUMBER_WORDS)                    # every file is used, none is missing


def test_the_needed_sounds_are_read_from_the_settings_and_the_asterisk_config(tmp_path: Path) -> None:
    settings = config_copy(tmp_path / "base")
    base = names(settings)
    menu = settings.menu
    assert {menu.greeting, menu.invalid, menu.no_input, menu.transfer} <= set(base)
    assert {k.prompt for k in menu.keypads.values()} <= set(base)
    queues = parse_file(settings.asterisk_dir / "queues.conf", config_dir=settings.asterisk_dir)
    template = queues.find("hotline-queue", templates=True)[0]
    assert int(template.get("announce-frequency")) > 0 and template.get("announce-position") == "yes"
    # app_queue: the position for position 1 and for the others, the expected wait, the
    # closing words, and every number file say.c plays in Mandarin.
    assert {"queue-youarenext", "queue-thereare", "queue-callswaiting", "queue-holdtime", "queue-minute",
            "queue-minutes", "queue-thankyou", *ZH_NUMBER_WORDS} <= set(base)
    assert len(base) == len(set(base))

    quiet = config_copy(tmp_path / "quiet", queues_conf=lambda t: t.replace("announce-frequency = 60",
                                                                             "announce-frequency = 0"))
    # No announcements: no queue files, and of the numbers only the ten digits a callback
    # number is read back with (SAY DIGITS).
    assert not [n for n in names(quiet) if n.startswith("queue-")]
    assert {n for n in names(quiet) if n.startswith("digits/")} == {f"digits/{d}" for d in range(10)}
    no_wait = config_copy(tmp_path / "no-wait", queues_conf=lambda t: t.replace("announce-holdtime = once",
                                                                                 "announce-holdtime = no"))
    assert not {"queue-holdtime", "queue-minutes"} & set(names(no_wait)) and "queue-thereare" in names(no_wait)
    more = config_copy(tmp_path / "more", queues_conf=lambda t: t.replace(
        "announce-position = yes", "announce-position = more\nqueue-thereare = hotline/position"))
    assert {"queue-quantity1", "queue-quantity2", "hotline/position"} <= set(names(more))
    assert "queue-thereare" not in names(more)
    dialplan = config_copy(tmp_path / "dialplan", extensions_conf=lambda t: t.replace(
        " same => n,Queue(general_queue)\n",
        " same => n,Playback(hotline/closed&hotline/goodbye)\n same => n,Background(${DYNAMIC})\n"
        " same => n,Queue(general_queue)\n", 1))
    assert {"hotline/closed", "hotline/goodbye"} <= set(names(dialplan))
    assert not [n for n in names(dialplan) if "$" in n]
    renamed = config_copy(tmp_path / "renamed", toml=lambda t: t.replace('prompt = "hotline/menu-more"',
                                                                         'prompt = "hotline/more-services"'))
    assert "hotline/more-services" in names(renamed) and "hotline/menu-more" not in names(renamed)


def test_every_file_the_captured_asterisk_asked_for_is_a_needed_sound(tmp_path: Path) -> None:
    """E1-E3, E12, E13: the files a real Asterisk 22 tried to play for our dialplan and
    menu, in the callers' language, and the queue positions it announced."""
    settings = config_copy(tmp_path)
    needed = set(names(settings))
    asked, languages, positions = set(), set(), []
    for log in sorted(E2E.glob("*.asterisk.log")):
        text = log.read_text(encoding="utf-8")
        asked |= set(re.findall(r"Playing '([^']+)\.\w+'", text))
        asked |= set(re.findall(r"File (\S+) does not exist in any format", text))
        languages |= set(re.findall(r"\(language '(\w+)'\)", text))
        positions += [int(p) for p in re.findall(r"their queue position \(which was (\d+)\)", text)]
    assert asked and positions
    assert asked <= needed
    assert languages == {settings.sounds.language}
    pjsip = parse_file(settings.asterisk_dir / "pjsip.conf", config_dir=settings.asterisk_dir)
    assert {e.get("language") for e in pjsip.of_type("endpoint") if e.get("language")} == {settings.sounds.language}
    # What app_queue plays for those positions (say_position in app_queue.c), and for later ones.
    for position in [*positions, 2, 37]:
        said = ["queue-youarenext"] if position == 1 else ["queue-thereare", *zh_number_files(position),
                                                             "queue-callswaiting"]
        assert set(said + ["queue-thankyou"]) <= needed, position


def test_a_keypad_menu_is_read_out_from_its_options(tmp_path: Path) -> None:
    settings = load_settings(env={})
    main_menu = settings.menu.keypads["main"]
    text = keypad_prompt(settings, main_menu)
    assert text.startswith(settings.menu.texts["choose"])
    places = []
    for key, target in main_menu.options.items():
        if key == settings.menu.operator_digit:
            continue
        name = (settings.menu.keypads[target[1:]].title if target.startswith("@")
                else settings.department(target).name)
        line = settings.menu.texts["option"].format(name=name, key=KEY_WORDS[key])
        assert line in text
        places.append((key, text.index(line)))
    assert [k for k, _ in sorted(places, key=lambda p: p[1])] == sorted(k for k, _ in places)
    assert text.endswith(settings.menu.texts["operator"].format(key=KEY_WORDS[settings.menu.operator_digit]))
    assert sound_texts(settings)[main_menu.prompt] == text
    assert settings.service.name in sound_texts(settings)[settings.menu.greeting]
    # One place for each fact: a department renamed is heard renamed.
    renamed = config_copy(tmp_path, toml=lambda t: t.replace('name = "税务"', 'name = "税务服务"'))
    assert "税务服务，请按二。" in keypad_prompt(renamed, renamed.menu.keypads["main"])
    with pytest.raises(SettingsError, match="no title"):
        config_copy(tmp_path / "untitled", toml=lambda t: t.replace('title = "其他业务"\n', ""))
    with pytest.raises(SettingsError, match=r"\[menu.texts\] is missing operator"):
        config_copy(tmp_path / "no-operator", toml=lambda t: t.replace('operator = "人工服务，请按{key}。"\n', ""))


# --------------------------------------------------------------------------- building


def run_build(settings: Settings, out: Path, **kwargs) -> dict:
    asyncio.run(build(settings, out, Espeak.from_voice(settings.voice), **kwargs))
    return json.loads((out / "sounds" / "hotline-sounds.json").read_text(encoding="utf-8"))


def test_a_build_makes_line_format_mandarin_and_reuses_what_it_made(tmp_path: Path) -> None:
    settings = config_copy(tmp_path)
    language = settings.sounds.language
    some = {settings.menu.greeting, "queue-thereare", "digits/5"}
    out = tmp_path / "out"
    manifest = run_build(settings, out, only=some, music=False)
    texts = sound_texts(settings)
    for name in some:
        fmt, seconds, rms_db, clipped = wav_facts(out / "sounds" / language / f"{name}.wav")
        assert fmt == (1, 2, 8000) and rms_db > -35 and clipped == 0, name
        assert 0.15 * len(texts[name]) < seconds < 0.8 * len(texts[name]) + 0.5, name
        assert manifest["sounds"][name]["text"] == texts[name]
    assert manifest["licence"]["speech"]

    # A second build with no synthesiser at all reuses the files made for the same texts...
    silent = replace(settings, voice=replace(settings.voice, tts_command="no-such-tts"))
    before = (out / "sounds" / language / "digits/5.wav").read_bytes()
    asyncio.run(build(silent, out, Espeak.from_voice(settings.voice), only=some, music=False))
    assert (out / "sounds" / language / "digits/5.wav").read_bytes() == before
    # ...and so does a build into another folder that names this one as its cache.
    asyncio.run(build(settings, tmp_path / "other", Espeak("no-such-tts"), only=some, music=False, cache=out))
    assert (tmp_path / "other" / "sounds" / language / "digits/5.wav").read_bytes() == before
    # A changed text is spoken again: without a synthesiser that is a clear error.
    changed = config_copy(tmp_path / "changed", toml=lambda t: t.replace('queue-thereare = "您现在排在第"',
                                                                         'queue-thereare = "您目前排在第"'))
    with pytest.raises(BuildError, match="cannot synthesise queue-thereare: .*no-such-tts not installed"):
        asyncio.run(build(changed, out, Espeak("no-such-tts"), only=some, music=False))


def test_a_recording_wins_over_synthesis(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = config_copy(tmp_path)
    prompts = settings.voice.prompt_dir
    greeting = b"\x10\x20\x30\x40" * 4000
    (prompts / "hotline").mkdir()
    write_wav(prompts / "hotline" / "welcome.wav", greeting)
    with wave.open(str(prompts / "queue-thankyou.wav"), "wb") as wav:     # 16 kHz stereo: converted
        wav.setnchannels(2), wav.setsampwidth(2), wav.setframerate(16000)
        wav.writeframes(array("h", [int(8000 * math.sin(i / 5)) for i in range(32000)]).tobytes())
    (prompts / "digits").mkdir()
    (prompts / "digits" / "5.wav").write_bytes(b"RIFF but not a wave file")   # unusable: logged, synthesised
    (prompts / "moh").mkdir()
    write_wav(prompts / "moh" / "our-own-music.wav", b"\x00\x10" * 16000)
    out = tmp_path / "out"
    manifest = run_build(settings, out, only={"hotline/welcome", "queue-thankyou", "digits/5"})
    zh = out / "sounds" / settings.sounds.language
    assert read_pcm(zh / "hotline" / "welcome.wav") == greeting
    assert manifest["sounds"]["hotline/welcome"]["made_by"] == "recording"
    fmt, seconds, _, _ = wav_facts(zh / "queue-thankyou.wav")
    assert fmt == (1, 2, 8000) and abs(seconds - 1.0) < 0.01
    assert manifest["sounds"]["queue-thankyou"]["made_by"] == "recording"
    assert manifest["sounds"]["digits/5"]["made_by"].startswith("espeak-ng")
    assert "prompts.recording_unusable" in caplog.text and "digits/5.wav" in caplog.text
    # The operator's hold music replaces the composed pieces.
    assert sorted(p.name for p in (out / "moh").iterdir()) == ["our-own-music.wav"]


def test_no_synthesiser_is_a_clear_error_naming_what_to_record(tmp_path: Path, monkeypatch, capsys) -> None:
    settings = config_copy(tmp_path, toml=lambda t: t.replace('tts_command = "espeak-ng"',
                                                              'tts_command = "no-such-tts"'))
    monkeypatch.setenv("HOTLINE_CONFIG", str(settings.source))
    status = main(["prompts", "build", "--out", str(tmp_path / "out"), "--no-music"])
    error = capsys.readouterr().err
    assert status == 2
    assert "cannot synthesise hotline/welcome and" in error and "no-such-tts not installed" in error
    assert f"record them in {settings.voice.prompt_dir}" in error
    assert not (tmp_path / "out" / "sounds" / "zh").exists()


def test_a_sound_with_neither_text_nor_recording_is_named(tmp_path: Path, capsys) -> None:
    settings = config_copy(tmp_path, extensions_conf=lambda t: t.replace(
        " same => n(fallback),Set(TIMEOUT(absolute)=0)\n",
        " same => n(fallback),Set(TIMEOUT(absolute)=0)\n same => n,Playback(hotline/closed)\n", 1))
    with pytest.raises(BuildError, match=r"hotline/closed \(extensions.conf \[hotline\] line \d+: Playback\): "
                                         r"add its text to \[sounds.texts\]"):
        asyncio.run(build(settings, tmp_path / "out", Espeak.from_voice(settings.voice), music=False))
    # docker compose's job keeps going: the rest is built, the gap is reported, Asterisk can start.
    out = tmp_path / "kept-going"
    only = ["hotline/closed", settings.menu.greeting]
    assert main(["--config", str(settings.source), "prompts", "build", "--out", str(out), "--no-music",
                 "--keep-going", "--only", *only]) == 0
    error = capsys.readouterr().err
    assert "left out: no text and no recording for: hotline/closed" in error
    assert "prompts.sound_unavailable" in error           # the log line (the CLI logs to stderr)
    zh = out / "sounds" / settings.sounds.language
    assert (zh / f"{settings.menu.greeting}.wav").is_file() and not (zh / "hotline" / "closed.wav").exists()


@pytest.fixture(scope="module")
def full_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path, dict]:
    """`hotline prompts build` of the repository's settings, once for the module."""
    settings = load_settings(env={})
    out = tmp_path_factory.mktemp("asterisk-data")
    assert main(["prompts", "build", "--out", str(out)]) == 0
    return settings, out, json.loads((out / "sounds" / "hotline-sounds.json").read_text(encoding="utf-8"))


def test_the_build_makes_every_needed_sound_and_the_hold_music(full_build) -> None:
    settings, out, manifest = full_build
    texts = sound_texts(settings)
    zh = out / "sounds" / settings.sounds.language
    for name in names(settings):
        fmt, seconds, rms_db, clipped = wav_facts(zh / f"{name}.wav")
        assert fmt == (1, 2, 8000), name
        assert rms_db > -35 and clipped == 0, (name, rms_db, clipped)
        assert 0.15 * len(texts[name]) < seconds < 0.8 * len(texts[name]) + 0.5, (name, seconds)
    assert set(manifest["sounds"]) == set(names(settings))
    music = sorted((out / "moh").glob("*.wav"))
    assert [p.stem for p in music] == [p.name for p in PIECES]
    total = 0.0
    for path in music:
        fmt, seconds, rms_db, clipped = wav_facts(path)
        assert fmt == (1, 2, 8000) and seconds > 45 and -30 < rms_db < -15 and clipped == 0, path
        total += seconds
    assert total > 150                                   # a few minutes before anything repeats
    assert "Apache-2.0" in manifest["licence"]["music"]


def sound_volume_problems(compose: dict, etc: Path) -> list[str]:
    """musiconhold.conf's class default and Asterisk's sounds folder, resolved as Asterisk
    does (relative to astdatadir), must be volumes that hotline-sounds fills, read-only
    for Asterisk, which starts after the job."""
    data_dir = PurePosixPath(parse_file(etc / "asterisk.conf").get("directories").get("astdatadir"))
    moh_dir = data_dir / parse_file(etc / "musiconhold.conf").get("default").get("directory")
    services = compose.get("services", {})
    if "hotline-sounds" not in services:
        return ["no hotline-sounds job"]
    asterisk_mounts = {PurePosixPath(v.split(":")[1]): v.split(":") for v in services["asterisk"].get("volumes", [])}
    job = services["hotline-sounds"]
    command = job.get("command", [])
    job_out = PurePosixPath(command[command.index("--out") + 1]) if "--out" in command else None
    job_mounts = {v.split(":")[0]: PurePosixPath(v.split(":")[1]) for v in job.get("volumes", [])}
    problems = []
    for inside_asterisk, sub in ((moh_dir, "moh"), (data_dir / "sounds", "sounds")):
        if inside_asterisk not in asterisk_mounts:
            problems.append(f"asterisk mounts nothing at {inside_asterisk}")
            continue
        volume, _, *mode = asterisk_mounts[inside_asterisk]
        if volume not in (compose.get("volumes") or {}) or mode != ["ro"]:
            problems.append(f"{inside_asterisk} is not a named volume mounted read-only")
        if job_out is None or job_mounts.get(volume) != job_out / sub:
            problems.append(f"hotline-sounds does not write {volume} as its --out {job_out}/{sub}")
    depends = (services["asterisk"].get("depends_on") or {}).get("hotline-sounds") or {}
    if depends.get("condition") != "service_completed_successfully":
        problems.append("asterisk does not wait for hotline-sounds")
    return problems


def test_compose_puts_the_built_tree_where_asterisk_reads_it(full_build) -> None:
    settings, out, _ = full_build
    etc = settings.asterisk_dir
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    compose = yaml.safe_load(text)
    assert sound_volume_problems(compose, etc) == []
    for breakage in (
        lambda d: d["services"]["asterisk"]["volumes"].remove("asterisk-moh:/var/lib/asterisk/moh:ro"),
        lambda d: d["services"]["asterisk"]["volumes"].__setitem__(
            d["services"]["asterisk"]["volumes"].index("asterisk-sounds:/var/lib/asterisk/sounds:ro"),
            "asterisk-sounds:/var/lib/asterisk/sounds"),
        lambda d: d["services"]["hotline-sounds"]["volumes"].remove("asterisk-moh:/srv/asterisk-data/moh"),
        lambda d: d["services"]["hotline-sounds"]["command"].__setitem__(3, "/srv/elsewhere"),
        lambda d: d["services"]["asterisk"]["depends_on"].pop("hotline-sounds"),
        lambda d: d["services"].pop("hotline-sounds"),
    ):
        broken = yaml.safe_load(text)
        breakage(broken)
        assert sound_volume_problems(broken, etc), breakage
    # What the job writes there: the built tree holds the music and the prompts in those places.
    data_dir = PurePosixPath(parse_file(etc / "asterisk.conf").get("directories").get("astdatadir"))
    moh_dir = PurePosixPath(data_dir) / parse_file(etc / "musiconhold.conf").get("default").get("directory")
    assert list((out / moh_dir.relative_to(data_dir)).glob("*.wav"))
    assert (out / "sounds" / settings.sounds.language / f"{settings.menu.greeting}.wav").is_file()
    queues = parse_file(etc / "queues.conf", config_dir=etc)
    assert {q.get("musicclass") for q in queues.objects() if q.name != "general"} == {"default"}
    # The job reads the live settings, Asterisk config and recordings, and starts from the image's build.
    job = compose["services"]["hotline-sounds"]
    assert {"./config/hotline.toml", "./config/asterisk", "./config/prompts"} <= {v.split(":")[0] for v in job["volumes"]}
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    image_build = re.search(r"^RUN hotline prompts build --out (\S+)", dockerfile, re.M)[1]
    assert job["command"][job["command"].index("--cache") + 1] == image_build
    assert "mkdir -p /srv/asterisk-data/sounds /srv/asterisk-data/moh" in dockerfile
    modules = parse_file(etc / "modules.conf").get("modules")           # Asterisk can read .wav files
    assert "format_wav.so" in [m.strip() for m in modules.get_all("load") + modules.get_all("require")]

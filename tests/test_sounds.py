"""The sounds Asterisk plays: `hotline prompts build` makes every file the keypad
menu, the dialplan and app_queue (with our queues.conf) play, in Mandarin for the
callers' language, plus the hold music, and the deployment puts them where Asterisk
looks. Which files are needed is read from the configuration; the captures of a real
Asterisk 22 (tests/fixtures/asterisk/e2e/*.asterisk.log) say which files it asked for.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable

import pytest

from hotline.asterisk.parse import parse_file
from hotline.asterisk.secrets import write_secrets
from hotline.settings import Settings, SettingsError, load_settings
from sounds.numbers import ZH_NUMBER_WORDS, spoken, zh_number_files
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
    assert not [n for n in names(quiet) if n.startswith(("queue-", "digits/"))]
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

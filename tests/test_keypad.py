from ivr.menu.agi_result import parse_agi_env, parse_agi_result
from ivr.menu.keypad import MenuPosition, OpenMenu, Retry, Route, decide

import pytest


def test_key_routes_to_department(settings):
    assert decide(settings.menu, MenuPosition(), "3") == Route("social_security", "key")


def test_operator_key_anywhere(settings):
    assert decide(settings.menu, MenuPosition("more", 2), "0") == Route("general", "operator")


def test_submenu_and_back(settings):
    more = decide(settings.menu, MenuPosition(), "9")
    assert isinstance(more, OpenMenu) and more.position.menu == "more"
    assert decide(settings.menu, more.position, "5") == Route("complaint", "key")
    assert decide(settings.menu, more.position, "*").position.menu == "main"


def test_invalid_and_missing_input_are_bounded(settings):
    position = MenuPosition()
    first = decide(settings.menu, position, "#")
    assert first == Retry(MenuPosition("main", 1), "invalid")
    second = decide(settings.menu, first.position, "")
    assert second == Retry(MenuPosition("main", 2), "no_input")
    assert decide(settings.menu, second.position, "#") == Route("general", "gave_up")


def test_agi_results_as_captured():
    assert parse_agi_result("200%20result%3D%20(timeout)%0A", url_encoded=True).timed_out
    assert parse_agi_result("200 result=2").digits() == "2"
    assert parse_agi_result("200 result=0").digits() == "0"  # GET DATA: the caller pressed 0
    assert parse_agi_result("200 result=0 endpos=3404").digits() == ""  # STREAM FILE played out
    assert parse_agi_result("200 result=-1 endpos=20160").hung_up
    assert parse_agi_result("HANGUP").hung_up
    assert parse_agi_result("511 Command Not Permitted on a dead channel or intercept routine").code == 511
    with pytest.raises(ValueError):
        parse_agi_result("garbage")


def test_agi_env_decoding_and_rejection():
    env = parse_agi_env("agi_request%3A%20async%0Aagi_channel%3A%20PJSIP%2F9000-00000000%0A"
                        "agi_uniqueid%3A%201795313795.0%0Aagi_calleridname%3A%20%E7%8E%8B%E5%B0%8F%E6%98%8E%0A%0A")
    assert env["agi_calleridname"] == "王小明"
    with pytest.raises(ValueError):
        parse_agi_env("this%20is%20not%20an%20env")

"""The supervisor codes (*1 listen, *2 whisper, *3 barge + extension): which
phones may use them comes from the supervisors' accounts (and the settings), and
every use, allowed or refused, is in the audit log.

The UserEvents are built from Asterisk 22's documentation, not captured:
app_userevent.c publishes ``UserEvent`` (class ``user``) with the channel's
snapshot headers (as in the captured Newchannel of the same call), then
``UserEvent: <name>`` and the application's ``key: value`` arguments, which
extensions.conf's [hotline-supervisor] gives as Spyer, Target and Mode.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from agents.accounts import service as accounts
from hotline.asterisk.generate import PJSIP_FILE, write_generated
from hotline.asterisk.secrets import write_secrets
from hotline.auth.roles import Role
from hotline.cli import main
from hotline.settings import DEFAULT_CONFIG
from tests.bridge_harness import eventually
from tests.conftest import ASTERISK_FIXTURES
from tests.console_harness import audit_rows, console_on, console_settings
from tests.standin import Transcript, recorded_event
from tests.standin.templates import Template
from tests.test_asterisk_config import AMI_SECRET, CONF_DIR, _ignore_local_secrets, dial_from
from tests.web_harness import make_account

ACTIONS = Transcript.load(ASTERISK_FIXTURES / "actions.jsonl")


def user_event(name: str, spyer: str, target: str, mode: str, sequence: int) -> bytes:
    """The UserEvent the dialplan raises on the dialling phone's channel."""
    channel = Template(recorded_event(ACTIONS, "Newchannel")).render({
        "Event": "UserEvent", "Privilege": "user,all", "Channel": f"PJSIP/{spyer}-0000000{sequence}",
        "ChannelState": "6", "ChannelStateDesc": "Up", "CallerIDNum": spyer, "CallerIDName": f"坐席{spyer}",
        "Language": "zh", "Context": "hotline-supervisor", "Exten": "s", "Priority": "3",
        "Uniqueid": f"1795314000.{sequence}", "Linkedid": f"1795314000.{sequence}"})
    return (channel[:-2] + f"UserEvent: {name}\r\nSpyer: {spyer}\r\nTarget: {target}\r\nMode: {mode}\r\n\r\n").encode()


async def test_every_use_of_a_supervisor_code_is_audited(settings, db):
    settings = console_settings(settings)
    boss = await make_account(db, settings, "zhang.wei", Role.SUPERVISOR, extension="8025")
    await make_account(db, settings, "wang.fang", extension="8001")
    async with console_on(settings, db) as rig:
        await rig.ami.inject(user_event("HotlineSpy", "8025", "8006", "whisper", 1)
                             + user_event("HotlineSpyRefused", "8001", "8006", "listen", 2)
                             + user_event("SomethingElse", "8001", "8006", "listen", 3))
        await eventually(lambda: _rows(db, 2), 5, "two audit rows")
    started, refused = await audit_rows(db, "spy.started"), await audit_rows(db, "spy.refused")
    assert [(r["actor"], r["subject"]) for r in started] == [("phone:8025", "extension:8006")]
    detail = json.loads(started[0]["detail"])
    assert (detail["mode"], detail["channel"], detail["uniqueid"]) == ("whisper", "PJSIP/8025-00000001",
                                                                      "1795314000.1")
    assert detail["accounts"] == [{"id": boss.id, "login": "zhang.wei", "role": "supervisor"}]
    assert [(r["actor"], r["subject"]) for r in refused] == [("phone:8001", "extension:8006")]
    assert json.loads(refused[0]["detail"])["accounts"][0]["login"] == "wang.fang"


async def _rows(db, count: int) -> bool:
    async with db.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'spy.%'") >= count


def copy_config(tmp_path: Path) -> Path:
    """A settings file and config/asterisk beside it, as an operator's checkout has them."""
    folder = tmp_path / "config"
    shutil.copytree(CONF_DIR, folder / "asterisk", ignore=_ignore_local_secrets)
    shutil.copy(DEFAULT_CONFIG, folder / "hotline.toml")
    return folder


async def test_asterisk_config_gives_the_supervisors_accounts_the_codes(settings, db, database_url, tmp_path,
                                                                       monkeypatch, capsys):
    folder = copy_config(tmp_path)
    monkeypatch.setenv("HOTLINE_CONFIG", str(folder / "hotline.toml"))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    fast = console_settings(settings)
    duty = await make_account(db, fast, "duty.desk", Role.SUPERVISOR, extension="8006")
    await make_account(db, fast, "admin", Role.ADMIN, extension="8010")
    await make_account(db, fast, "wang.fang", extension="8007")
    retired = await make_account(db, fast, "old.boss", Role.SUPERVISOR, extension="8008")
    async with db.acquire() as conn:
        await accounts.set_disabled(conn, retired.id, True, "test")

    def cli(*args: str) -> int:
        return main(["asterisk-config", *args])

    assert await asyncio.to_thread(cli, "--check") == 1          # the checkout has the settings' only
    assert await asyncio.to_thread(cli) == 0
    assert "supervisors: 8025 (settings), 8006, 8010 (accounts)" in capsys.readouterr().out
    generated = (folder / "asterisk" / PJSIP_FILE).read_text(encoding="utf-8")
    assert _supervisors(generated) == ["8006", "8010", "8025"]
    assert await asyncio.to_thread(cli, "--check") == 0

    # The dialplan lets the accounts' phones use the codes, and no other.
    etc = folder / "asterisk"
    write_secrets(settings, etc / "secrets", {"HOTLINE_AMI_SECRET": AMI_SECRET})
    assert dial_from(etc, "8006", "*18001").index("ChanSpy") >= 0
    assert dial_from(etc, "8007", "*18001").index("ChanSpy") < 0
    assert dial_from(etc, "8008", "*28001").index("ChanSpy") < 0

    async with db.acquire() as conn:
        await accounts.set_disabled(conn, duty.id, True, "test")
    assert await asyncio.to_thread(cli, "--check") == 1          # a supervisor gone: regenerate
    assert await asyncio.to_thread(cli) == 0
    assert _supervisors((etc / PJSIP_FILE).read_text(encoding="utf-8")) == ["8010", "8025"]
    assert await asyncio.to_thread(cli, "--no-accounts") == 0
    assert (etc / PJSIP_FILE).read_text(encoding="utf-8") == (CONF_DIR / PJSIP_FILE).read_text(encoding="utf-8")

    # No database: the settings' supervisors, and a warning that says so.
    monkeypatch.setenv("HOTLINE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    capsys.readouterr()
    assert await asyncio.to_thread(cli) == 0
    assert "only the settings' supervisors (8025)" in capsys.readouterr().err
    assert _supervisors((etc / PJSIP_FILE).read_text(encoding="utf-8")) == ["8025"]


def _supervisors(pjsip: str) -> list[str]:
    found, current = [], None
    for line in pjsip.splitlines():
        if line.endswith("(agent-endpoint)"):
            current = line[1:line.index("]")]
        elif line == "set_var = HOTLINE_ROLE=supervisor":
            found.append(current)
    return sorted(found)


def test_accounts_supervisors_outside_the_departments_are_left_out(settings, tmp_path):
    folder = copy_config(tmp_path)
    write_generated(settings, folder / "asterisk", ["8006", "9999", "8025"])
    assert _supervisors((folder / "asterisk" / PJSIP_FILE).read_text(encoding="utf-8")) == ["8006", "8025"]

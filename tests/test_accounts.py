"""Accounts without a browser: the rules against the settings, the
``hotline agents`` CLI, the last-admin guard, argon2 hashing (off the event
loop, rehashed when the parameters change), the first-admin hint."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.accounts import rules, service
from agents.accounts.rules import AccountError, QueueSeat
from hotline.app import create_app
from hotline.auth.login import Outcome, log_in
from hotline.auth.passwords import Passwords
from hotline.auth.roles import Role
from hotline.cli import main
from hotline.settings import load_settings
from tests.web_harness import FAST_ARGON2, PASSWORD, fast, make_account, submit_login


# -- the rules --------------------------------------------------------------------------------


def test_default_queues_come_from_the_extensions_department(settings):
    assert rules.default_queues(settings, "8006") == (QueueSeat("social_security", 0),
                                                      QueueSeat("general_queue", 1))
    assert rules.default_queues(settings, "8025") == (QueueSeat("general_queue", 0),)   # general's own desk
    draft = rules.draft(settings, " Zhang.San ", "张三", "8011", Role.AGENT)
    assert draft.login == "zhang.san" and draft.queues == (QueueSeat("housing_fund", 0),
                                                           QueueSeat("general_queue", 1))


def test_bad_accounts_are_refused_with_a_reason(settings):
    cases = [("8029", Role.AGENT, None, "not one of"), ("", Role.AGENT, None, "needs an extension"),
             ("8006", Role.AGENT, "nosuch:0", "no queue"), ("8006", Role.AGENT, "tax:0,tax:1", "twice"),
             ("8006", Role.AGENT, "tax:101", "penalty"), ("8006", Role.AGENT, "tax:x", "whole number")]
    for extension, role, queues, why in cases:
        seats = rules.parse_queues(queues) if queues and ":x" not in queues else None
        with pytest.raises(AccountError, match=why) as refused:
            if queues and ":x" in queues:
                rules.parse_queues(queues)
            rules.draft(settings, "ok.login", "名字", extension, role, seats)
        assert refused.value.zh, why
    for login in ("a", "-lead", "UPPER CASE", "x" * 33, "中文"):
        with pytest.raises(AccountError):
            rules.draft(settings, login, "名字", "8006", Role.AGENT)
    admin = rules.draft(settings, "root", "管理员", None, Role.ADMIN)
    assert admin.extension is None and admin.queues == ()


# -- the CLI ------------------------------------------------------------------------------------


def cli(monkeypatch, database_url, *args: str, password: str | None = None) -> int:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    if password is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main(list(args))


@pytest.fixture
def fast_config(tmp_path, monkeypatch):
    """A settings file like the repository's, with cheap argon2 parameters."""
    from hotline.settings import DEFAULT_CONFIG

    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    for name, value in FAST_ARGON2.items():
        text = text.replace(f"\n{name} = ", f"\n{name} = {value}  # was ", 1)
    path = tmp_path / "hotline.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIG", str(path))
    return path


async def test_cli_add_list_disable_enable_reset_and_set_role(fast_config, database_url, db, monkeypatch, capsys):
    run = lambda *args, password=None: cli(monkeypatch, database_url, *args, password=password)  # noqa: E731
    assert await asyncio.to_thread(run, "agents", "add", "--login", "root", "--name", "管理员", "--role", "admin",
                                   "--password-stdin", password=PASSWORD) == 0
    assert await asyncio.to_thread(run, "agents", "add", "--login", "chen.jing", "--name", "陈静", "--extension",
                                   "8006", "--password-stdin", password=PASSWORD) == 0
    out = capsys.readouterr().out
    assert "serves social_security:0, general_queue:1" in out
    assert await asyncio.to_thread(run, "agents", "list") == 0
    listed = {a["login"]: a for a in map(json.loads, capsys.readouterr().out.splitlines())}
    assert listed["chen.jing"]["queues"] == {"social_security": 0, "general_queue": 1}
    assert listed["chen.jing"]["role"] == "agent" and listed["root"]["extension"] is None
    assert "password" not in json.dumps(listed) and "argon2" not in json.dumps(listed)
    for args in (("disable", "chen.jing"), ("enable", "chen.jing"), ("set-role", "chen.jing", "supervisor")):
        assert await asyncio.to_thread(run, "agents", *args) == 0, args
    assert await asyncio.to_thread(run, "agents", "reset-password", "chen.jing", "--password-stdin",
                                   password="another password") == 0
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT actor, action, subject FROM audit_log ORDER BY id")
        role = await conn.fetchval("SELECT role FROM accounts WHERE login = 'chen.jing'")
    assert role == "supervisor"
    assert [r["action"] for r in rows] == ["account.created", "account.created", "account.disabled",
                                           "account.enabled", "account.role_changed", "account.password_reset"]
    assert all(r["actor"].startswith("cli:") for r in rows)
    web_settings = load_settings(fast_config, env={}).web
    attempt = await log_in(db, Passwords(web_settings), web_settings, "chen.jing", "another password",
                           "127.0.0.1", None, None)
    assert attempt.outcome is Outcome.OK


async def test_cli_refuses_bad_input_clearly(fast_config, database_url, monkeypatch, capsys):
    run = lambda *args, password=None: cli(monkeypatch, database_url, *args, password=password)  # noqa: E731
    assert await asyncio.to_thread(run, "agents", "add", "--login", "x.y", "--name", "某人", "--extension", "9999",
                                   "--password-stdin", password=PASSWORD) == 1
    assert "extension 9999 is not one of the departments' (8001-8028)" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "agents", "add", "--login", "x.y", "--name", "某人", "--extension", "8001",
                                   "--password-stdin", password="short") == 1
    assert "too short" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "agents", "disable", "nobody") == 1
    assert "no account 'nobody'" in capsys.readouterr().err
    # The last admin cannot be disabled or demoted: nobody could manage accounts from the web.
    assert await asyncio.to_thread(run, "agents", "add", "--login", "root", "--name", "管理员", "--role", "admin",
                                   "--extension", "8025", "--password-stdin", password=PASSWORD) == 0
    for args in (("disable", "root"), ("set-role", "root", "agent")):
        assert await asyncio.to_thread(run, "agents", *args) == 1
        assert "last enabled admin" in capsys.readouterr().err


# -- passwords ----------------------------------------------------------------------------------


async def test_a_hash_made_with_old_parameters_is_rehashed_at_login(settings, db):
    old = fast(settings)
    account = await make_account(db, old, "rehash.me")
    new = fast(settings, argon2_time_cost=2, argon2_memory_cost=128)
    attempt = await log_in(db, Passwords(new.web), new.web, "rehash.me", PASSWORD, "127.0.0.1", None, None)
    assert attempt.outcome is Outcome.OK
    async with db.acquire() as conn:
        stored = await conn.fetchval("SELECT password_hash FROM accounts WHERE id = $1", account.id)
        detail = await conn.fetchval("SELECT detail FROM audit_log WHERE action = 'login.succeeded'")
    assert stored.startswith("$argon2id$") and "m=128,t=2,p=1" in stored
    assert '"rehashed": true' in detail
    again = await log_in(db, Passwords(new.web), new.web, "rehash.me", PASSWORD, "127.0.0.1", None, None)
    assert again.outcome is Outcome.OK


async def test_hashing_runs_off_the_event_loop(settings):
    """Real production parameters (64 MiB, t=3): the loop keeps ticking while
    four hashes are computed."""
    passwords = Passwords(settings.web)
    stalls = []

    async def ticker():
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            stalls.append(time.perf_counter() - before)

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    hashes = await asyncio.gather(*(passwords.hash(f"password {n}!") for n in range(4)))
    took = time.perf_counter() - started
    tick.cancel()
    assert all(h.startswith("$argon2id$v=19$m=65536,t=3,p=4$") for h in hashes)
    assert max(stalls) < 0.05, max(stalls)      # a hash takes far longer than this
    assert took > 0.05 and len(stalls) > 5


# -- a fresh install ----------------------------------------------------------------------------


async def test_a_fresh_install_says_how_to_make_the_first_admin(settings, db, caplog):
    caplog.set_level(logging.WARNING)
    web_settings = fast(settings)
    async with TestClient(TestServer(create_app(web_settings, bridge=False, pool=db))) as client:
        page = await (await client.get("/login")).text()
        assert "还没有管理员账户" in page and "hotline agents add --role admin --login admin" in page
        assert "accounts.no_admin" in caplog.text and "hotline agents add --role admin" in caplog.text
        await make_account(db, web_settings, "root", Role.ADMIN)
        assert "还没有管理员账户" not in await (await client.get("/login")).text()
        assert (await submit_login(client, "root")).status == 303


def test_web_settings_are_checked(tmp_path):
    from hotline.settings import DEFAULT_CONFIG, SettingsError

    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    for bad, why in (('cookie_secure = "sometimes"', "cookie_secure"), ("lockout_window = 0", "lockout_window"),
                     ('time_zone = "Mars/Olympus"', "time_zone"), ("lockout_failures = 2.5", "lockout_failures"),
                     ("session_lifetime = 5", "unknown setting")):
        key = bad.split(" =")[0]
        changed = re.sub(rf"(?m)^{key} = .*$", bad, text) if f"\n{key} = " in text else text.replace(
            "[web]\n", f"[web]\n{bad}\n")
        path = tmp_path / "hotline.toml"
        path.write_text(changed, encoding="utf-8")
        with pytest.raises(SettingsError, match=why):
            load_settings(path, env={})
    assert load_settings(env={}).web.session_idle_timeout == 1800.0

"""The HTTP read API, the CLI and the log format, against a real PostgreSQL."""

import io
import json
import logging

from aiohttp.test_utils import TestClient, TestServer

from hotline.cli import main
from hotline.logs import bound_call, configure_logging, get_logger
from hotline.app import CORE, create_app
from tests.bridge_harness import bearer, ended_call
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AmiStandIn, Transcript
from tests.test_two_processes import free_port, hotline_serve

ABANDONED_CALL = "1795313813.2"


async def test_calls_api_and_health(settings, db):
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    async with AmiStandIn([transcript.connection(1)]) as server:
        app = create_app(settings.with_overrides(ami={"port": server.port}), pool=db)
        async with TestClient(TestServer(app)) as client:
            core = app[CORE]
            await core.ami.wait_logged_in(timeout=5)
            await ended_call(db, ABANDONED_CALL)
            await core.settle()
            health = await client.get("/healthz")     # public: no credentials needed
            assert health.status == 200
            report = await health.json()
            assert report["ami_connected"] is True and report["database"] is True
            assert report["notify_listening"] is True and report["write_backlog"] == 0

            auth = await bearer(db)
            listing = await (await client.get("/api/calls?limit=5", headers=auth)).json()
            assert [c["linkedid"] for c in listing["calls"]] == [ABANDONED_CALL]
            assert listing["calls"][0]["outcome"] == "abandoned"

            one = await (await client.get(f"/api/calls/{ABANDONED_CALL}", headers=auth)).json()
            assert one["call"]["caller_name"] == "王小明"
            assert "queue.abandoned" in [e["kind"] for e in one["timeline"]]
            assert one["recordings"][0]["status"] == "missing"

            bad = await client.get("/api/calls?limit=lots", headers=auth)
            assert bad.status == 400 and "limit" in (await bad.json())["error"]
            missing = await client.get("/api/calls/1795313813.99", headers=auth)
            assert missing.status == 404
    # Asterisk unreachable (the stand-in is gone): up, but not healthy.
    app = create_app(settings.with_overrides(ami={"port": server.port}), pool=db)
    async with TestClient(TestServer(app)) as client:
        health = await client.get("/healthz")
        assert health.status == 503
        assert (await health.json())["ami_connected"] is False


def test_cli_migrate_and_calls(database_url, monkeypatch, capsys):
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["calls", "--limit", "3"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_cli_rejects_bad_settings(tmp_path, capsys):
    broken = tmp_path / "hotline.toml"
    broken.write_text("[service]\nname = 1\n")
    assert main(["--config", str(broken), "check-config"]) == 2
    assert "bad settings" in capsys.readouterr().err


def test_json_logs_carry_the_call_id():
    configure_logging("json")
    stream = io.StringIO()
    logging.getLogger().handlers[0].stream = stream
    try:
        with bound_call("1795313795.0"):
            get_logger("test").info("menu.routed", department="社会保险")
        line = json.loads(stream.getvalue().strip().splitlines()[-1])
    finally:
        configure_logging("console")
    assert line["call_id"] == "1795313795.0"
    assert line["department"] == "社会保险" and line["level"] == "info"


def test_cli_route_and_eval_work_without_a_database(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOTLINE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["route", "喂，你好，我想问一下那个公基金怎么提取"]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["department"] == "housing_fund" and decision["action"] in ("route", "confirm")

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"text": "我要转人工", "intent": "general"}, ensure_ascii=False) + "\n"
        + json.dumps({"text": "营业直照怎么办", "intent": "enterprise"}, ensure_ascii=False) + "\n",
        encoding="utf-8")
    assert main(["asr", "eval", str(manifest), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 2
    assert lines[0]["input"]["text"] == "我要转人工"


async def test_serve_warns_while_the_carrier_address_is_a_placeholder(database_url, tmp_path):
    """A real `hotline serve` with the repository's settings (192.0.2.10, RFC 5737)."""
    port = free_port()
    async with hotline_serve(database_url, port, tmp_path, "--web-only"):
        lines = [json.loads(line) for line in (tmp_path / f"serve-{port}.log").read_text().splitlines()
                 if line.startswith("{")]
    warning = next(line for line in lines if line["event"] == "asterisk.carrier_placeholder")
    assert warning["level"] == "warning" and warning["addresses"] == ["192.0.2.10", "192.0.2.10:5060"]
    assert [line["event"] for line in lines].index("asterisk.carrier_placeholder") \
        < [line["event"] for line in lines].index("hotline.serving")

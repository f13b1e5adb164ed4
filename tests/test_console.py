"""The agents' console: the service on an HTTP port, AMI from the Asterisk
stand-in (capture 2's call: menu, queue, AgentCalled, AgentConnect,
AgentComplete), a real PostgreSQL, people logged in through the login form and
their consoles' WebSockets."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from agents.accounts import service as accounts
from agents.console.dispositions import DispositionError, Outcome, parse
from agents.console.masking import mask_number, shown_number
from agents.console.screen_pop import menu_summary
from hotline.auth.roles import Role
from hotline.settings import ConsoleSettings, SettingsError, load_settings
from knowledge import store as knowledge
from knowledge.search import parse as parse_query
from routing import default_knowledge, route
from routing.decision import timeline_detail as heard_detail
from tests.bridge_harness import bearer, eventually, timeline_detail
from tests.console_harness import (CALLER, MENU, MENU_CALL, Console, audit_rows, console_on, console_settings,
                                   console_socket, earlier_calls, menu_script, person, post)
from tests.standin import AgiCaller, Emulator, Transcript
from tests.standin.framing import get_header
from tests.standin.templates import Template
from tests.standin import recorded_event
from tests.conftest import ASTERISK_FIXTURES
from tests.web_harness import make_account

ACTIONS = Transcript.load(ASTERISK_FIXTURES / "actions.jsonl")
ACTIONS_CALL = "1795313835.4"


def captured(transcript: Transcript, event: str, occurrence: int = 1, **values: str) -> bytes:
    return Template(recorded_event(transcript, event, occurrence)).render(values).encode()


def sent(rig, action: str) -> list[dict]:
    return [m for conn in rig.ami.received for m in conn if get_header(m, "Action") == action]


# -- pure -------------------------------------------------------------------------------------

def test_numbers_are_masked_for_agents_and_whole_for_supervisors():
    assert mask_number("13800138000") == "138****8000"
    assert mask_number("057188886666") == "057*****6666"
    assert mask_number("2512345") == "25***45"          # too short to keep 3 + 4: a third at each end
    assert mask_number("88886666") == "88****66"
    assert mask_number("8006") == "8**6"
    assert mask_number("") == "" and mask_number(None) is None
    console = ConsoleSettings()
    assert shown_number("13800138000", Role.AGENT, console) == "138****8000"
    assert shown_number("13800138000", Role.SUPERVISOR, console) == "13800138000"
    assert shown_number("13800138000", Role.ADMIN, console) == "13800138000"
    everyone = ConsoleSettings(full_number_role="agent")
    assert shown_number("13800138000", Role.AGENT, everyone) == "13800138000"
    admins_only = ConsoleSettings(full_number_role="admin", mask_keep_start=2, mask_keep_end=2)
    assert shown_number("13800138000", Role.SUPERVISOR, admins_only) == "13*******00"


def test_console_settings_are_checked(tmp_path):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "config" / "hotline.toml").read_text(encoding="utf-8")
    section = re.search(r"(?ms)^\[console\]\n.*?\n\n", text).group(0)
    assert load_settings(env={}).console == ConsoleSettings()
    for body, error in (('full_number_role = "boss"', "full_number_role"), ("history_days = 0", "history_days"),
                        ("mask_keep_end = -1", "mask_keep_end"), ("session_check_interval = 0", "seconds"),
                        ('search_limit = "20"', "search_limit"), ("colour = 1", "unknown")):
        broken = tmp_path / "hotline.toml"
        broken.write_text(text.replace(section, f"[console]\n{body}\n\n"), encoding="utf-8")
        with pytest.raises(SettingsError, match=error):
            load_settings(broken, env={})
    broken.write_text(text.replace(section, ""), encoding="utf-8")
    assert load_settings(broken, env={}).console == ConsoleSettings()       # the section may be left out


def test_a_query_is_cut_into_bigrams():
    query = parse_query("社保卡，怎么补办？")
    assert query.text == "社保卡怎么补办"
    assert query.terms == ("社保", "保卡", "怎么", "么补", "补办")   # the punctuation splits 卡 from 怎
    assert parse_query("ＡＰＰ 下载 12345").terms == ("app", "下载", "12345")
    assert parse_query("税").terms == ("税",)
    assert parse_query("  ？！ ").empty


def test_the_screen_pop_says_what_the_caller_said_in_the_voice_menu(settings):
    knowledge_base = default_knowledge()
    decision = route("我想问一下社保卡丢了怎么补办", knowledge_base)
    assert decision.department == "social_security" and decision.item == "social_security.card_apply"
    rows = [{"kind": "voice.heard", "detail": heard_detail(decision, transcripts=["我想问一下社保卡丢了怎么补办"],
                                                            asr_confidence=0.91, reaction="routed")},
            {"kind": "menu.routed", "detail": {"department": "social_security", "queue": "social_security",
                                               "reason": "speech"}}]
    summary = menu_summary(rows, settings, {"social_security.card_apply": "社保卡怎么办理、补办和激活？"})
    assert summary["kind"] == "voice" and summary["transcript"] == "我想问一下社保卡丢了怎么补办"
    assert summary["intent"] == {"code": "social_security", "name": settings.department("social_security").name,
                                 "queue": "social_security"}
    assert summary["confidence"] == round(decision.confidence, 3) and summary["asr_confidence"] == 0.91
    assert summary["item"] == {"id": "social_security.card_apply", "question": "社保卡怎么办理、补办和激活？"}
    keypad = menu_summary([{"kind": "menu.key", "detail": {"menu": "main", "key": "3", "decision": "route"}},
                           {"kind": "menu.routed", "detail": {"department": "social_security", "reason": "key"}}],
                          settings)
    assert keypad["kind"] == "keypad" and keypad["keys"] == ["3"] and keypad["transcript"] is None
    assert keypad["intent"]["code"] == "social_security"
    assert menu_summary([], settings) is None


def test_a_disposition_is_checked():
    assert parse({"linkedid": "1.2", "outcome": "resolved"}).outcome is Outcome.RESOLVED
    kept = parse({"linkedid": "1.2", "outcome": "unsatisfied", "note": " 嫌等待太久 ", "knowledge_item_id": "tax.invoice"})
    assert (kept.note, kept.knowledge_item_id, kept.outcome.for_ticket) == ("嫌等待太久", "tax.invoice", True)
    for body, said in (({"outcome": "resolved"}, "通话编号"), ({"linkedid": "1.2", "outcome": "maybe"}, "处理结果"),
                       ({"linkedid": "1.2", "outcome": "unresolved"}, "备注"),
                       ({"linkedid": "1.2", "outcome": "resolved", "note": "长" * 2001}, "2000"),
                       ({"linkedid": "1.2", "outcome": "resolved", "note": 5}, "备注")):
        with pytest.raises(DispositionError) as refused:
            parse(body)
        assert said in refused.value.chinese


# -- with the stand-in and PostgreSQL ------------------------------------------------------------

async def test_an_answered_call_pops_up_and_is_disposed(settings, db):
    """An agent logs in to the queues from the console; capture 2's caller goes
    through the keypad menu into social_security and is offered (AgentCalled),
    answered (AgentConnect) and ends (AgentComplete). The console gets the
    screen-pop with the masked number, the menu, the department's knowledge and
    the caller's last 90 days; the agent records the outcome."""
    settings = console_settings(settings)
    await knowledge.seed_from_files(db)
    await earlier_calls(db)
    account = await make_account(db, settings, "wang.fang", name="王芳", extension="8006")
    committed = []
    emulator = Emulator(members=[], agi=AgiCaller(inputs=["3"]))
    async with console_on(settings, db, [menu_script()], emulator) as rig:
        rig.core.hub.subscribe(lambda batch: committed.extend(batch.timeline))
        async with person(rig, "wang.fang") as (client, csrf), console_socket(client) as console:
            hello = await console.next("hello")
            assert hello["agent"]["state"] == "offline" and hello["seat"]["extension"] == "8006"
            assert hello["pause_reasons"] == list(settings.agents.pause_reasons)
            assert [q["queue"] for q in hello["seat"]["queues"]] == ["social_security", "general_queue"]
            assert hello["full_numbers"] is False and hello["panel"]["queues"]

            status, answer = await post(client, csrf, "/api/console/queues/login")
            assert status == 200 and answer["ok"] and answer["message"] == "已登录队列"
            await console.state("idle")
            adds = sent(rig, "QueueAdd")
            assert sorted((a["Queue"], a["MemberName"], a["Penalty"]) for a in adds) == [
                ("general_queue", "王芳", "1"), ("social_security", "王芳", "0")]

            ringing = await console.state("ringing")
            assert ringing["agent"]["call"]["caller_number"] == "138****8000"       # masked by the server
            assert CALLER not in json.dumps(ringing)
            pop = await console.next("screen_pop")
            assert pop["phase"] == "ringing" and pop["linkedid"] == MENU_CALL and pop["uniqueid"] == MENU_CALL
            assert pop["caller"] == {"number": "138****8000", "masked": True, "name": "王小明"}
            assert pop["menu"]["kind"] == "keypad" and pop["menu"]["keys"] == ["3"]
            assert pop["menu"]["intent"]["code"] == "social_security"
            assert pop["department"]["code"] == "social_security" and pop["problems"] == []
            assert len(pop["knowledge"]) == settings.console.knowledge_items
            assert {k["department"] for k in pop["knowledge"]} == {"social_security"}
            assert all(k["question"] and k["answer"] for k in pop["knowledge"])
            # The last 90 days: 5 days ago (answered, left unresolved), 30 days ago (abandoned).
            assert [(h["outcome"], h["outcome_label"]) for h in pop["history"]] == [
                ("answered", "已接听"), ("abandoned", "排队时挂断")]
            assert pop["history"][0]["disposition"] == {"outcome": "unresolved", "label": "未解决",
                                                        "note": "需要社保中心回电", "by": "周丽"}
            connected = await console.next("screen_pop", lambda m: m["phase"] == "connected")
            assert {**connected, "phase": "ringing"} == pop                        # made once, shown again
            await console.state("wrap_up")
            # The page reloaded during the wrap-up: the pop is shown again, for the disposition.
            async with console_socket(client) as reloaded:
                assert (await reloaded.next("hello"))["agent"]["wrapup"]["linkedid"] == MENU_CALL
                again = await reloaded.next("screen_pop")
                assert again == {**pop, "phase": "wrap_up"}

            not_mine = await post(client, csrf, "/api/console/disposition",
                                  {"linkedid": "1700000000.1", "outcome": "resolved"})
            assert not_mine == (409, {"ok": False, "message": "只能登记本分机接听过的通话"})
            no_note = await post(client, csrf, "/api/console/disposition",
                                 {"linkedid": MENU_CALL, "outcome": "unresolved"})
            assert no_note[0] == 400 and "备注" in no_note[1]["message"]
            item = pop["knowledge"][0]["id"]
            status, saved = await post(client, csrf, "/api/console/disposition",
                                       {"linkedid": MENU_CALL, "outcome": "resolved", "note": "已告知补办流程",
                                        "knowledge_item_id": item})
            assert status == 200 and saved["message"] == "已登记：已解决"
            status, corrected = await post(client, csrf, "/api/console/disposition",
                                           {"linkedid": MENU_CALL, "outcome": "unsatisfied",
                                            "note": "来电人对补办时限不满意", "knowledge_item_id": item})
            assert status == 200 and corrected["disposition"]["previous_outcome"] == "resolved"

            status, done = await post(client, csrf, "/api/console/wrapup/done")
            assert status == 200
            await console.state("idle")
        await rig.core.settle()
        assert rig.ami.unexpected == []

    async with db.acquire() as conn:
        stored = await conn.fetch("SELECT * FROM call_dispositions WHERE linkedid = $1", MENU_CALL)
    assert len(stored) == 1
    assert (stored[0]["outcome"], stored[0]["note"], stored[0]["account_id"], stored[0]["agent_interface"],
            stored[0]["uniqueid"], stored[0]["knowledge_item_id"]) == (
        "unsatisfied", "来电人对补办时限不满意", account.id, "PJSIP/8006", MENU_CALL, item)
    assert stored[0]["knowledge_question"] == pop["knowledge"][0]["question"]
    disposed = await timeline_detail(db, MENU_CALL, "call.disposed")
    assert [(d["outcome"], d["for_ticket"], d.get("previous_outcome")) for d in disposed] == [
        ("resolved", False, None), ("unsatisfied", True, "resolved")]
    assert disposed[1]["disposition_id"] == stored[0]["id"] and "note" not in disposed[1]
    # The hub handed the rows to subscribers (what tickets follow) once committed.
    assert [e.detail["outcome"] for e in committed if e.kind == "call.disposed"] == ["resolved", "unsatisfied"]
    # ... and the tickets feature opened the call's ticket from the stored disposition.
    async with db.acquire() as conn:
        tickets = await conn.fetch("SELECT * FROM tickets WHERE linkedid = $1", MENU_CALL)
    assert [(t["source"], t["assignee_account_id"], t["department"], t["description"]) for t in tickets] == [
        ("disposition", account.id, "social_security", "来电人对补办时限不满意")]
    audited = await audit_rows(db, "call.disposed")
    assert [(r["subject"], json.loads(r["detail"])["outcome"]) for r in audited] == [
        (f"call:{MENU_CALL}", "resolved"), (f"call:{MENU_CALL}", "unsatisfied")]
    assert audited[0]["actor"] == f"account:{account.id}:wang.fang" and audited[0]["address"] == "127.0.0.1"
    logins = await audit_rows(db, "agent.queue_login")
    assert len(logins) == 1 and json.loads(logins[0]["detail"])["ok"] is True
    assert len(await audit_rows(db, "console.opened")) == 2         # the page and its reload


async def test_the_console_socket_needs_a_persons_session_from_this_site(settings, db):
    settings = console_settings(settings)
    await make_account(db, settings, "wang.fang", extension="8006")
    await make_account(db, settings, "admin", Role.ADMIN)
    async with console_on(settings, db) as rig:
        from aiohttp import ClientSession, WSServerHandshakeError
        async with ClientSession() as stranger:
            with pytest.raises(WSServerHandshakeError) as refused:
                await stranger.ws_connect(rig.http.make_url("/ws/console"))
            assert refused.value.status == 401
            token = await bearer(db, "agent")                       # a machine has no seat
            with pytest.raises(WSServerHandshakeError) as refused:
                await stranger.ws_connect(rig.http.make_url("/ws/console"), headers=token)
            assert refused.value.status == 403
            answer = await stranger.post(rig.http.make_url("/api/console/pause"), json={"reason": "午休"},
                                         headers=token)
            assert answer.status == 403 and "个人账户" in (await answer.json())["message"]
        async with person(rig, "wang.fang") as (client, _csrf):
            with pytest.raises(WSServerHandshakeError) as refused:
                await client.ws_connect("/ws/console", headers={"Origin": "https://evil.example"})
            assert refused.value.status == 403
            async with console_socket(client) as console:              # the page's own origin
                assert (await console.next("hello"))["seat"]["extension"] == "8006"
        async with person(rig, "admin") as (client, _csrf):
            with pytest.raises(WSServerHandshakeError) as refused:
                await client.ws_connect("/ws/console")
            assert refused.value.status == 409                        # no extension, no console
            page = await client.get("/console")
            assert page.status == 409 and "没有分机号" in await page.text()
    refusals = await audit_rows(db, "csrf.refused")
    assert [json.loads(r["detail"])["reason"] for r in refusals] == ["foreign origin"]


async def test_a_disabled_account_or_an_ended_session_closes_the_console(settings, db):
    settings = console_settings(settings, session_check_interval=0.1)
    account = await make_account(db, settings, "wang.fang", extension="8006")
    await make_account(db, settings, "li.na", extension="8007")
    async with console_on(settings, db) as rig:
        async with person(rig, "wang.fang") as (client, csrf), console_socket(client) as console:
            await console.next("hello")
            assert (await post(client, csrf, "/api/console/queues/login"))[0] == 200
            await console.state("idle")
            # Open and idle: the checks are not activity, the session still times out.
            async with db.acquire() as conn:
                await conn.execute("UPDATE account_sessions SET last_seen_at = now() - interval '60 seconds'")
            await asyncio.sleep(0.35)
            async with db.acquire() as conn:
                idle = await conn.fetchval("SELECT now() - last_seen_at FROM account_sessions")
            assert idle.total_seconds() >= 60
            async with db.acquire() as conn:
                await accounts.set_disabled(conn, account.id, True, "test")
            assert await close_code(console) == 4401
        # A disabled agent takes no more calls: the phone left its queues.
        await eventually(lambda: _async(len(sent(rig, "QueueRemove")) == 2), 5, "QueueRemove x 2")
        removed = await audit_rows(db, "agent.queue_logout")
        assert removed[0]["actor"] == "system:console" and json.loads(removed[0]["detail"])["why"] == "account disabled"

        async with person(rig, "li.na") as (client, csrf), console_socket(client) as console:
            await console.next("hello")
            await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
            assert await close_code(console) == 4401
        assert sent(rig, "QueueRemove")[2:] == []          # a logout ends the page, not the queue work


async def _async(value):
    return value


async def close_code(console: Console, timeout: float = 5.0) -> int:
    """Read on until the server closes the console; its close code."""
    while True:
        frame = await console.socket.receive(timeout=timeout)
        if frame.type.name != "TEXT":
            assert frame.type.name == "CLOSE", frame
            return frame.data


async def test_pause_with_a_reason_unpause_and_queue_logout_are_shown_and_audited(settings, db):
    settings = console_settings(settings)
    account = await make_account(db, settings, "wang.fang", name="王芳", extension="8006")
    async with console_on(settings, db) as rig:
        async with person(rig, "wang.fang") as (client, csrf), console_socket(client) as console:
            await console.next("hello")
            assert (await post(client, csrf, "/api/console/queues/login"))[0] == 200
            await console.state("idle")
            status, answer = await post(client, csrf, "/api/console/pause", {"reason": "午休"})
            assert status == 200 and answer["message"] == "已小休：午休"
            paused = await console.state("paused")
            assert (paused["agent"]["label"], paused["agent"]["reason"]) == ("小休", "午休")
            status, answer = await post(client, csrf, "/api/console/pause", {"reason": "看电影"})
            assert status == 409 and "看电影" in answer["message"]
            assert (await post(client, csrf, "/api/console/unpause"))[0] == 200
            await console.state("idle")
            assert (await post(client, csrf, "/api/console/queues/logout"))[0] == 200
            await console.state("offline")
            # Without the CSRF header nothing happens (and that is audited too).
            forged = await client.post("/api/console/queues/login", json={})
            assert forged.status == 403
    actor = f"account:{account.id}:wang.fang"
    for action, reasons in (("agent.queue_login", [None]), ("agent.paused", ["午休", "看电影"]),
                            ("agent.unpaused", [None]), ("agent.queue_logout", [None])):
        rows = await audit_rows(db, action)
        assert [json.loads(r["detail"]).get("reason") for r in rows] == reasons, action
        assert {(r["actor"], r["subject"], r["address"]) for r in rows} == {(actor, f"account:{account.id}", "127.0.0.1")}
    refused = json.loads((await audit_rows(db, "agent.paused"))[1]["detail"])
    assert refused["ok"] is False and "看电影" in refused["error"]
    assert len(await audit_rows(db, "csrf.refused")) == 1


async def test_transfer_from_the_console_is_audited_and_in_the_timeline(settings, db):
    settings = console_settings(settings)
    await make_account(db, settings, "wang.fang", extension="8006")
    async with console_on(settings, db) as rig:
        async with person(rig, "wang.fang") as (client, csrf), console_socket(client) as console:
            await console.next("hello")
            await post(client, csrf, "/api/console/queues/login")
            await console.state("idle")
            nothing = await post(client, csrf, "/api/console/transfer", {"kind": "queue", "target": "tax"})
            assert nothing[0] == 409 and "no answered call" in nothing[1]["message"]
            # Capture 4's call: 8006 answers the caller PJSIP/9000-00000004.
            await rig.ami.inject(captured(ACTIONS, "AgentCalled") + captured(ACTIONS, "AgentConnect"))
            await console.state("in_call")
            bad = await post(client, csrf, "/api/console/transfer", {"kind": "phone", "target": "tax"})
            assert bad[0] == 400
            own = await post(client, csrf, "/api/console/transfer", {"kind": "extension", "target": "8006"})
            assert own[0] == 409 and "own extension" in own[1]["message"]
            status, done = await post(client, csrf, "/api/console/transfer", {"kind": "queue", "target": "tax"})
            assert status == 200 and done["message"] == "已转接"
        redirect = sent(rig, "Redirect")[-1]
        assert (redirect["Channel"], redirect["Exten"]) == ("PJSIP/9000-00000004", "tax")
        await rig.core.settle()
    transferred = await audit_rows(db, "call.transferred")
    assert [r["subject"] for r in transferred] == [f"call:{ACTIONS_CALL}"]
    assert json.loads(transferred[0]["detail"])["destination"] == "tax"
    failed = await audit_rows(db, "call.transfer_failed")
    assert [json.loads(r["detail"])["target"]["value"] for r in failed] == ["tax", "8006"]
    assert [d["destination"] for d in await timeline_detail(db, ACTIONS_CALL, "call.transferred")] == ["tax"]


async def test_each_console_gets_its_own_agent_and_supervisors_see_whole_numbers(settings, db):
    settings = console_settings(settings)
    await make_account(db, settings, "wang.fang", extension="8006")
    await make_account(db, settings, "zhang.wei", Role.SUPERVISOR, extension="8025")
    async with console_on(settings, db) as rig:
        async with person(rig, "wang.fang") as (agent_client, agent_csrf), \
                person(rig, "zhang.wei") as (boss_client, boss_csrf), \
                console_socket(agent_client) as agent_console, console_socket(boss_client) as boss_console:
            assert (await boss_console.next("hello"))["full_numbers"] is True
            await agent_console.next("hello")
            await post(agent_client, agent_csrf, "/api/console/queues/login")
            await post(boss_client, boss_csrf, "/api/console/queues/login")
            await agent_console.state("idle")
            await boss_console.state("idle")
            # Capture 2's caller offered to the supervisor's phone, then to the agent's.
            await rig.ami.inject(captured(MENU, "AgentCalled", Interface="PJSIP/8025", MemberName="张伟"))
            ringing = await boss_console.state("ringing")
            assert ringing["agent"]["call"]["caller_number"] == CALLER
            pop = await boss_console.next("screen_pop")
            assert pop["caller"] == {"number": CALLER, "masked": False, "name": "王小明"}
            await rig.ami.inject(captured(MENU, "AgentCalled"))
            pop = await agent_console.next("screen_pop")
            assert pop["caller"]["number"] == "138****8000"
            await rig.ami.inject(_ring_no_answer())
            missed = await agent_console.next("ring_no_answer")
            assert missed["caller_number"] == "138****8000" and missed["ring_ms"] == 15000
            await asyncio.sleep(0.1)
        assert all(m.get("agent", {}).get("interface", "PJSIP/8006") == "PJSIP/8006"
                   and m.get("interface", "PJSIP/8006") == "PJSIP/8006" for m in agent_console.messages)


def _ring_no_answer() -> bytes:
    """AgentRingNoAnswer as Asterisk 22 documents it (not captured): AgentCalled's
    headers, then RingTime in milliseconds (app_queue.c rna())."""
    called = Template(recorded_event(MENU, "AgentCalled")).render({"Event": "AgentRingNoAnswer"})
    return (called[:-2] + "RingTime: 15000\r\n\r\n").encode()


async def test_knowledge_search_during_a_call(settings, db):
    settings = console_settings(settings)
    await knowledge.seed_from_files(db)
    await make_account(db, settings, "wang.fang", extension="8006")
    async with console_on(settings, db) as rig:
        async with person(rig, "wang.fang") as (client, _csrf):
            found = await (await client.get("/api/knowledge/search", params={"q": "怎么提取公积金"})).json()
            first = found["items"][0]
            assert first["id"] == "housing_fund.withdraw_general" and first["procedure"] and first["materials"]
            assert len(found["items"]) <= settings.console.search_limit
            only_tax = await (await client.get("/api/knowledge/search",
                                               params={"q": "发票", "department": "tax"})).json()
            assert {i["department"] for i in only_tax["items"]} == {"tax"}
            assert (await (await client.get("/api/knowledge/search", params={"q": ""})).json())["items"] == []
        from aiohttp import ClientSession
        async with ClientSession() as stranger:
            assert (await stranger.get(rig.http.make_url("/api/knowledge/search?q=社保"))).status == 401


async def test_the_state_log_refers_to_accounts(settings, db):
    account = await make_account(db, console_settings(settings), "wang.fang", extension="8006")
    async with db.acquire() as conn:
        insert = ("INSERT INTO agent_state_log (account_id, interface, from_state, to_state, cause, occurred_at) "
                  "VALUES ($1, 'PJSIP/8006', 'offline', 'idle', 'login', now())")
        await conn.execute(insert, account.id)
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(insert, account.id + 1000)
        await conn.execute("DELETE FROM accounts WHERE id = $1", account.id)
        assert await conn.fetchval("SELECT account_id FROM agent_state_log") is None     # the log stays


@pytest.mark.speech
async def test_the_screen_pop_shows_what_the_caller_said_in_the_spoken_menu(settings, db, tmp_path, monkeypatch):
    """The whole path: capture 2's caller speaks to the real spoken menu (AudioSocket,
    Vosk), is routed to social_security and offered to the agent; the screen-pop has
    the transcript, the intent and its confidence, the matched knowledge item first."""
    from tests.console_harness import SAID, voice_console, voice_settings

    settings = voice_settings(settings, tmp_path, monkeypatch)
    await make_account(db, settings, "wang.fang", extension="8006")
    async with voice_console(settings, db) as rig:
        async with person(rig, "wang.fang") as (client, csrf), console_socket(client) as console:
            await console.next("hello")
            await post(client, csrf, "/api/console/queues/login")
            pop = await console.next("screen_pop", timeout=30)
        await rig.core.settle()
    menu = pop["menu"]
    assert menu["kind"] == "voice" and menu["transcript"] == SAID and menu["transcripts"] == [SAID]
    assert menu["intent"]["code"] == "social_security" and menu["confidence"] >= 0.7
    assert 0 < menu["asr_confidence"] <= 1 and menu["reaction"] == "routed"
    assert menu["item"] == {"id": "social_security.pension_record", "question": "养老保险缴费记录怎么查？"}
    assert [k["id"] for k in pop["knowledge"]] == ["social_security.pension_record", "social_security.card_apply",
                                                   "social_security.flexible_payment"]
    assert pop["caller"]["number"] == "138****8000" and pop["history"] == []
    heard = await timeline_detail(db, MENU_CALL, "voice.heard")
    assert heard[0]["transcripts"] == [SAID]             # what the pop read is what the menu wrote


async def test_a_console_on_a_web_only_process_gets_its_agent_from_the_bridge(settings, db):
    """Consoles served by ``hotline serve --web-only`` hear the bridge's agent
    states through NOTIFY, and make the screen-pop from the shared database."""
    from aiohttp.test_utils import TestServer

    from hotline.app import CORE, create_app

    settings = console_settings(settings)
    await make_account(db, settings, "wang.fang", extension="8006")
    web_only = create_app(settings, bridge=False, pool=db)
    async with console_on(settings, db) as rig, TestServer(web_only) as web_server:
        await web_only[CORE].relay.wait_listening(5)
        async with person(rig, "wang.fang") as (bridge_client, csrf), person(web_server, "wang.fang") as (client, _):
            async with console_socket(client) as console:
                assert (await console.next("hello"))["agent"]["state"] == "offline"
                await post(bridge_client, csrf, "/api/console/queues/login")
                await console.state("idle")
                await rig.ami.inject(captured(MENU, "AgentCalled"))
                ringing = await console.state("ringing")
                assert ringing["agent"]["call"]["caller_number"] == "138****8000"
                pop = await console.next("screen_pop")
                assert pop["caller"]["number"] == "138****8000" and pop["department"]["code"] == "social_security"
            # A console opened later on the web-only process starts from the last state it heard.
            async with console_socket(client) as later:
                assert (await later.next("hello"))["agent"]["state"] == "ringing"

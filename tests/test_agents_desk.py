"""The agents' desk end to end: the service speaks AMI to the stand-in (app_queue
emulated from the captures, captured Agent*/Queue* events injected on the
socket), PostgreSQL is real.

Captured (Asterisk 22.10.1): QueueAdd/QueuePause/QueueRemove and their events,
QueueStatus with a paused member and a waiting caller, AgentCalled/Connect/
Complete, ContactStatus (NonQualified), DeviceStateChange, QueueMemberStatus,
Redirect out of a queue bridge, a restart keeping the dynamic member.
Documented, not captured (built from the captured messages with the documented
values): AgentRingNoAnswer (AgentCalled's headers plus RingTime, ms),
ContactStatus Removed, DeviceStateChange UNAVAILABLE, QueueMemberStatus with
Status 5 (a QueueMember item with Status 5 is captured, e2e).
"""

from __future__ import annotations

import json
import re
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agents.actions import Outcome
from agents.board import AgentStatus
from agents.seat import AgentSeat
from agents.setup import AGENT_DESK
from agents.transfer import TRANSFER_CONTEXT, TransferTarget
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import CORE, create_app
from hotline.asterisk.parse import parse_file
from hotline.settings import SettingsError, load_settings
from tests.asterisk_dialplan import dialplan, run
from tests.bridge_harness import app_on, bearer, eventually, timeline_detail
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AmiStandIn, Emulator, Transcript, find_action_id, recorded_event, recorded_list
from tests.standin.framing import get_header
from tests.standin.templates import Template

SEAT = AgentSeat(account_id=7, name="坐席8006", extension="8006",
                 queues=(("social_security", 0), ("general_queue", 2)))
MENU = Transcript.load(ASTERISK_FIXTURES / "call-menu-queue-answered.jsonl")
ACTIONS = Transcript.load(ASTERISK_FIXTURES / "actions.jsonl")
MENU_CALL = "1795313795.0"
ACTIONS_CALL = "1795313835.4"


def captured(transcript: Transcript, event: str, occurrence: int = 1, **values: str) -> bytes:
    """A captured event, with some header values replaced."""
    return Template(recorded_event(transcript, event, occurrence)).render(values).encode()


def ring_no_answer() -> bytes:
    """AgentRingNoAnswer as Asterisk 22 documents it: AgentCalled's channel, Dest*
    and queue headers, then RingTime (app_queue.c rna(): milliseconds)."""
    called = Template(recorded_event(MENU, "AgentCalled")).render({"Event": "AgentRingNoAnswer"})
    return (called[:-2] + "RingTime: 15000\r\n\r\n").encode()


async def seat_accounts(db) -> None:
    """The accounts behind the seats used here (agent_state_log.account_id refers to
    accounts): 7 at 8006, 8 at 8007, as the console registers them."""
    async with db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO accounts (id, login, name, extension, role, password_hash, created_by) "
            "VALUES ($1, $2, $3, $4, 'agent', 'not a hash: no login', 'test') ON CONFLICT (id) DO NOTHING",
            [(7, "agent.8006", "坐席8006", "8006"), (8, "li.si", "李四", "8007")])


@asynccontextmanager
async def desk_on(settings, db, emulator=None, scripts=(), **server_options):
    await seat_accounts(db)
    server = AmiStandIn(list(scripts), emulator=emulator or Emulator(members=[]), **server_options)
    async with server:
        async with app_on(server, settings, db) as app:
            yield server, app[AGENT_DESK]


def sent(server: AmiStandIn, action: str) -> list[dict]:
    return [m for conn in server.received for m in conn if get_header(m, "Action") == action]


async def status_of(desk, status: AgentStatus, seat: AgentSeat = SEAT):
    async def check():
        state = desk.state(seat)
        return state if state.status is status else None
    return await eventually(check, 5, f"{seat.extension} to be {status.value}")


async def state_log(db, interface: str = SEAT.interface) -> list[tuple]:
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM agent_state_log WHERE interface = $1 ORDER BY id", interface)
    return [(r["from_state"], r["to_state"], r["reason"], r["cause"]) for r in rows]


async def test_login_adds_the_agent_to_each_queue_with_penalty_and_name_and_twice_is_fine(settings, db):
    async with desk_on(settings, db) as (server, desk):
        heard: list[dict] = []
        desk.core.hub.subscribe_live("agents", heard.append)
        report = await desk.login(SEAT)
        assert report.ok and [r.outcome for r in report.results] == [Outcome.DONE, Outcome.DONE]
        state = await status_of(desk, AgentStatus.IDLE)
        assert [(m.queue, m.penalty, m.paused) for m in state.queues] == [
            ("general_queue", 2, False), ("social_security", 0, False)]
        adds = sent(server, "QueueAdd")
        assert sorted((a["Queue"], a["Interface"], a["MemberName"], a["StateInterface"], a["Penalty"], a["Paused"])
                      for a in adds) == [
            ("general_queue", "PJSIP/8006", "坐席8006", "PJSIP/8006", "2", "false"),
            ("social_security", "PJSIP/8006", "坐席8006", "PJSIP/8006", "0", "false")]

        again = await desk.login(SEAT)
        assert again.ok
        assert [(r.action, r.outcome) for r in again.results] == [
            ("QueueAdd", Outcome.ALREADY), ("QueueAdd", Outcome.ALREADY), ("QueuePause", Outcome.DONE)]
        assert "Already there" in again.results[0].message

        # The account now serves one queue only: the other membership goes.
        narrower = AgentSeat(7, "坐席8006", "8006", (("social_security", 0),))
        assert (await desk.login(narrower)).ok
        assert [(r["Queue"], r["Interface"]) for r in sent(server, "QueueRemove")] == [("general_queue", "PJSIP/8006")]
        await eventually(lambda: _true(len(desk.state(SEAT).queues) == 1), 5, "general_queue to be left")
        unknown = await desk.login(AgentSeat(7, "坐席8006", "8006", (("no_such_queue", 0),)))
        assert not unknown.ok and "no_such_queue" in unknown.error and len(sent(server, "QueueAdd")) == 5
        await desk.core.settle()
        assert server.unexpected == []
    assert desk.state(SEAT).status is AgentStatus.IDLE
    assert (await state_log(db))[0] == ("offline", "idle", None, "login")
    first = next(m for m in heard if m["type"] == "state")
    assert first["account_id"] == 7 and first["agent"]["label"] == "空闲" and first["agent"]["extension"] == "8006"


async def test_pause_with_a_reason_then_unpause(settings, db):
    async with desk_on(settings, db) as (server, desk):
        refused = await desk.pause(SEAT, "午休")
        assert not refused.ok and "Interface not found" in refused.failures[0].message   # not logged in
        await desk.login(SEAT)
        await status_of(desk, AgentStatus.IDLE)
        report = await desk.pause(SEAT, "午休")
        assert report.ok
        state = await status_of(desk, AgentStatus.PAUSED)
        assert state.reason == "午休" and all(m.paused and m.reason == "午休" for m in state.queues)
        assert len(state.queues) == 2
        pause = sent(server, "QueuePause")[-1]
        assert (pause["Interface"], pause["Paused"], pause["Reason"]) == ("PJSIP/8006", "true", "午休")
        assert "Queue" not in pause      # every queue of the agent at once

        other = AgentSeat(8, "李四", "8007", (("social_security", 0),))
        assert (await desk.login(other, paused=True, reason="培训")).ok
        trainee = await status_of(desk, AgentStatus.PAUSED, other)
        assert trainee.reason == "培训" and sent(server, "QueueAdd")[-1]["Reason"] == "培训"
        assert not (await desk.login(other, paused=True)).ok      # a pause needs a reason

        unknown = await desk.pause(SEAT, "看电影")
        assert not unknown.ok and "pause reason" in unknown.error
        assert len(sent(server, "QueuePause")) == 2

        assert (await desk.unpause(SEAT)).ok
        await status_of(desk, AgentStatus.IDLE)
        await desk.core.settle()
    assert [row[1:] for row in await state_log(db)] == [
        ("idle", None, "login"), ("paused", "午休", "pause"), ("idle", None, "unpause")]
    assert await state_log(db, "PJSIP/8007") == [("offline", "paused", "培训", "login")]


async def test_logout_removes_the_agent_from_each_queue(settings, db):
    async with desk_on(settings, db) as (server, desk):
        await desk.login(SEAT)
        await status_of(desk, AgentStatus.IDLE)
        report = await desk.logout(SEAT)
        assert report.ok and [r.outcome for r in report.results] == [Outcome.DONE, Outcome.DONE]
        assert sorted(r["Queue"] for r in sent(server, "QueueRemove")) == ["general_queue", "social_security"]
        await status_of(desk, AgentStatus.OFFLINE)
        twice = await desk.logout(SEAT)
        assert twice.ok and {r.outcome for r in twice.results} == {Outcome.ALREADY}
        assert "Not there" in twice.results[0].message
        assert server.emulator.queues.of("PJSIP/8006") == []


async def test_ring_no_answer_is_reported_to_agent_and_supervisors_and_does_not_pause(settings, db):
    async with desk_on(settings, db) as (server, desk):
        heard: list[dict] = []
        desk.core.hub.subscribe_live("agents", heard.append)
        await desk.login(SEAT)
        await status_of(desk, AgentStatus.IDLE)
        await server.inject(captured(MENU, "AgentCalled"))
        ringing = await status_of(desk, AgentStatus.RINGING)
        assert ringing.call.caller_number == "13800138000" and ringing.call.caller_name == "王小明"
        assert ringing.call.uniqueid == MENU_CALL and ringing.call.queue == "social_security"
        await server.inject(ring_no_answer())
        await status_of(desk, AgentStatus.IDLE)
        report = await eventually(lambda: _first(heard, "ring_no_answer"), 5, "the ring-no-answer report")
        await desk.core.settle()
        assert sent(server, "QueuePause") == []
    assert (report["extension"], report["queue"], report["uniqueid"], report["ring_ms"]) == (
        "8006", "social_security", MENU_CALL, 15000)
    assert (await state_log(db))[-2:] == [("idle", "ringing", None, "offered"),
                                          ("ringing", "idle", None, "ring_no_answer")]


async def _first(messages: list[dict], kind: str):
    return next((m for m in messages if m["type"] == kind), None)


async def answered_call(server: AmiStandIn) -> None:
    for event in ("AgentCalled", "AgentConnect", "AgentComplete"):
        await server.inject(captured(MENU, event))


async def test_wrap_up_begins_at_agent_complete_and_ends_when_the_agent_marks_the_call_done(settings, db):
    async with desk_on(settings, db) as (server, desk):
        await desk.login(SEAT)
        await status_of(desk, AgentStatus.IDLE)
        await answered_call(server)
        wrapping = await status_of(desk, AgentStatus.WRAP_UP)
        assert wrapping.wrapup.uniqueid == MENU_CALL
        assert (wrapping.wrapup.deadline - wrapping.wrapup.since).total_seconds() == settings.agents.wrapup_max
        done = desk.finish_wrapup(SEAT)
        assert done.status is AgentStatus.IDLE
        assert desk.finish_wrapup(SEAT).status is AgentStatus.IDLE     # twice: nothing more
        await desk.core.settle()
    assert [row[1:] for row in await state_log(db)][-4:] == [
        ("ringing", None, "offered"), ("in_call", None, "answered"), ("wrap_up", None, "call_ended"),
        ("idle", None, "done")]


async def test_wrap_up_ends_by_itself_at_the_maximum(settings, db):
    settings = settings.with_overrides(agents={"wrapup_max": 0.3})
    async with desk_on(settings, db) as (server, desk):
        await desk.login(SEAT)
        await status_of(desk, AgentStatus.IDLE)
        await answered_call(server)
        await status_of(desk, AgentStatus.WRAP_UP)
        await status_of(desk, AgentStatus.IDLE)
        await desk.core.settle()
    assert (await state_log(db))[-1] == ("wrap_up", "idle", None, "wrapup_max")


async def test_an_unregistered_phone_makes_the_agent_unavailable_until_it_registers_again(settings, db):
    async with desk_on(settings, db) as (server, desk):
        await desk.login(SEAT)
        await status_of(desk, AgentStatus.IDLE)
        member = recorded_event(MENU, "QueueMemberStatus")
        await server.inject(captured(MENU, "ContactStatus", ContactStatus="Removed")
                            + captured(MENU, "DeviceStateChange", State="UNAVAILABLE")
                            + Template(member).render({"Status": "5", "InCall": "0"}).encode())
        gone = await status_of(desk, AgentStatus.UNAVAILABLE)
        assert gone.reason == "unregistered" and gone.status.label == "不可用"
        await server.inject(captured(MENU, "ContactStatus") + captured(MENU, "DeviceStateChange"))
        await status_of(desk, AgentStatus.IDLE)
        await desk.core.settle()
    assert ("idle", "unavailable", "unregistered", "phone_unregistered") in await state_log(db)


async def test_reconnect_rebuilds_the_agents_from_queue_status_with_a_pause_made_meanwhile(settings, db):
    """The connection drops; meanwhile the agent is paused (午休) and a caller
    queues. After the new login the desk agrees with Asterisk's QueueStatus
    (the captured listing: 8006 paused 午休 since LastPause, one caller waiting)."""
    emulator = Emulator(members=[])
    async with desk_on(settings, db, emulator) as (server, desk):
        heard: list[dict] = []
        desk.core.hub.subscribe_live("queues", heard.append)
        await desk.login(SEAT)
        await status_of(desk, AgentStatus.IDLE)
        emulator.lists["QueueStatus"] = recorded_list(ACTIONS, find_action_id(ACTIONS, "QueueStatus"))
        logins = desk.core.ami.logins
        await server.drop()
        await eventually(lambda: _true(desk.core.ami.logins > logins and desk.core.ami.logged_in), 10,
                         "the second login")
        paused = await status_of(desk, AgentStatus.PAUSED)
        assert paused.reason == "午休" and paused.since.timestamp() == 1795313834
        assert [(m.queue, m.paused) for m in paused.queues] == [("social_security", True)]   # general_queue: not listed
        panel = {q.queue: q for q in desk.queues()}
        assert panel["social_security"].waiting == 1 and panel["social_security"].paused == 1
        last = await eventually(lambda: _panel_with_caller(heard), 5, "a panel message with the caller")
        await desk.core.settle()
    assert (await state_log(db))[-1] == ("idle", "paused", "午休", "resync")
    social = next(q for q in last["queues"] if q["queue"] == "social_security")
    assert social["waiting"] == 1 and social["longest_wait_seconds"] >= 1 and social["agents"]["paused"] == 1


async def _true(value):
    return value


async def _panel_with_caller(messages: list[dict]):
    for message in reversed(messages):
        if any(q["waiting"] for q in message["queues"]):
            return message
    return None


async def test_members_survive_an_asterisk_restart_and_the_console_agrees(settings, db):
    """Capture 5: logged in, a call answered and completed, `core restart now`;
    after the new login QueueStatus still lists the member (persistentmembers):
    the agent is still logged in, in the wrap-up of the call before the restart."""
    transcript = Transcript.load(ASTERISK_FIXTURES / "asterisk-restart-midcall.jsonl")
    seat = AgentSeat(7, "坐席8006", "8006", (("social_security", 0),))
    scripts = [transcript.connection(1), transcript.connection(2)]
    async with desk_on(settings, db, Emulator(members=[]), scripts, refuse_between=0.6) as (server, desk):
        assert (await desk.login(seat)).ok
        await eventually(lambda: _true(desk.core.ami.logins == 2 and desk.core.ami.logged_in), 10, "second login")
        state = desk.state(seat)
        assert state.status is AgentStatus.WRAP_UP and state.wrapup.uniqueid == "1795313857.8"
        assert [m.queue for m in state.queues] == ["social_security"]
        assert desk.finish_wrapup(seat).status is AgentStatus.IDLE
        await desk.core.settle()
    assert server.unexpected == []
    assert [row[1:] for row in await state_log(db)] == [
        ("idle", None, "login"), ("ringing", None, "offered"), ("in_call", None, "answered"),
        ("wrap_up", None, "call_ended"), ("idle", None, "done")]


async def test_queue_panel_counts_callers_and_agents_per_queue(settings, db):
    other = AgentSeat(8, "李四", "8007", (("social_security", 0), ("general_queue", 1)))
    async with desk_on(settings, db) as (server, desk):
        heard: list[dict] = []
        desk.core.hub.subscribe_live("queues", heard.append)
        await desk.login(SEAT)
        await desk.login(other)
        await desk.pause(other, "会议")
        await status_of(desk, AgentStatus.PAUSED, other)
        await server.inject(captured(ACTIONS, "QueueCallerJoin"))
        await eventually(lambda: _true(desk.queues()[2].waiting == 1), 5, "the caller in the panel")
        panel = {q.queue: q for q in desk.queues()}
        social = panel["social_security"]
        assert (social.waiting, social.free, social.busy, social.paused, social.unavailable) == (1, 1, 0, 1, 0)
        general = panel["general_queue"]
        assert (general.waiting, general.free, general.paused) == (0, 1, 1)
        assert panel["tax"].waiting == 0 and panel["tax"].free == 0
        await server.inject(captured(MENU, "AgentCalled") + captured(MENU, "AgentConnect")
                            + captured(ACTIONS, "QueueCallerLeave"))
        await eventually(lambda: _true({q.queue: q for q in desk.queues()}["social_security"].busy == 1), 5, "busy")
        social = {q.queue: q for q in desk.queues()}["social_security"]
        assert (social.waiting, social.free, social.busy, social.paused) == (0, 0, 1, 1)
        last = await eventually(lambda: _panel_matching(heard, "social_security", busy=1, waiting=0), 5,
                                "the published panel")
    assert last["queues"][0]["queue"] == "enterprise"          # every department's queue, in settings order
    # Throttled: far fewer panel messages than changes (2 logins x 2 queues, pause, caller, call).
    assert len(heard) < 8


async def _panel_matching(messages: list[dict], queue: str, **want):
    if not messages:
        return None
    found = next(q for q in messages[-1]["queues"] if q["queue"] == queue)
    counts = {"waiting": found["waiting"], **found["agents"]}
    return messages[-1] if all(counts[k] == v for k, v in want.items()) else None


async def test_transfer_redirects_the_callers_channel_and_is_in_the_timeline(settings, db):
    async with desk_on(settings, db) as (server, desk):
        await desk.login(SEAT)
        await status_of(desk, AgentStatus.IDLE)
        nothing = await desk.transfer(SEAT, TransferTarget.queue("tax"))
        assert not nothing.ok and sent(server, "Redirect") == []
        # Capture 4's call: 8006 answers the caller PJSIP/9000-00000004.
        await server.inject(captured(ACTIONS, "AgentCalled") + captured(ACTIONS, "AgentConnect"))
        await status_of(desk, AgentStatus.IN_CALL)

        own = await desk.transfer(SEAT, TransferTarget.extension("8006"))
        assert not own.ok and "own extension" in own.message
        report = await desk.transfer(SEAT, TransferTarget.queue("tax"))
        assert report.ok and report.message == "Redirect successful" and report.destination == "tax"
        redirect = sent(server, "Redirect")[-1]
        assert (redirect["Channel"], redirect["Context"], redirect["Exten"], redirect["Priority"]) == (
            "PJSIP/9000-00000004", TRANSFER_CONTEXT, "tax", "1")
        # Then, as captured: the agent's leg hangs up at once, AgentComplete only when the caller does.
        await server.inject(captured(ACTIONS, "Hangup", Channel="PJSIP/8006-00000005"))
        wrapping = await status_of(desk, AgentStatus.WRAP_UP)
        await server.inject(captured(ACTIONS, "AgentComplete"))
        await desk.core.settle()
        assert desk.state(SEAT) == wrapping            # the late AgentComplete changes nothing
    done = await timeline_detail(db, ACTIONS_CALL, "call.transferred")
    assert done == [{"by": "坐席8006", "account_id": 7, "interface": "PJSIP/8006", "target_kind": "queue",
                     "target": "tax", "destination": "tax", "context": TRANSFER_CONTEXT,
                     "channel": "PJSIP/9000-00000004", "queue": "social_security", "action": "Redirect",
                     "message": "Redirect successful"}]
    refused = await timeline_detail(db, ACTIONS_CALL, "call.transfer_failed")
    assert [r["target"] for r in refused] == ["8006"]
    assert json.dumps(done, ensure_ascii=False).count("Redirect successful") == 1


def test_the_transfer_context_queues_each_department_and_rings_each_extension(settings):
    """hotline-transfer (extensions.conf) takes every destination the console may
    send: each department's queue, each agent's extension (then general_queue)."""
    conf = Path(__file__).resolve().parents[1] / "config" / "asterisk"
    dp = dialplan(parse_file(conf / "extensions.conf", config_dir=conf))
    for dept in settings.departments:
        assert run(dp, TRANSFER_CONTEXT, dept.queue).apps == ["Queue", "Hangup"]
        assert run(dp, TRANSFER_CONTEXT, dept.queue).executed[0].argv == [dept.queue]
        for extension in dept.extensions:
            rang = run(dp, TRANSFER_CONTEXT, extension)
            assert [(e.app, e.argv[0]) for e in rang.executed if e.app in ("Dial", "Queue")] == [
                ("Dial", f"PJSIP/{extension}"), ("Queue", settings.fallback_queue)]
    assert dp.match(TRANSFER_CONTEXT, "2512345") is None


async def test_agent_states_reach_the_browsers_of_another_process(settings, db):
    """A web-only process (the consoles' web side) has no AMI: it hears the
    bridge's agent states and queue panel through NOTIFY, and its browsers get them."""
    web_only = create_app(settings, bridge=False, pool=db)
    async with desk_on(settings, db) as (_server, desk), TestClient(TestServer(web_only)) as client:
        other = web_only[CORE]
        await other.relay.wait_listening(5)
        socket = await client.ws_connect("/ws/events?topics=agents,queues", headers=await bearer(db))
        await eventually(lambda: _true(other.hub.browsers.clients("agents") == 1), 5, "the browser to attach")
        await desk.login(SEAT)
        topics = set()
        while True:
            body = json.loads((await socket.receive(timeout=5)).data)
            assert body["origin"] == desk.core.hub.origin
            topics.add(body["topic"])
            if body["topic"] == "agents" and len(body["agent"]["queues"]) == 2:
                break
        await socket.close()
    assert body == {**body, "type": "state", "account_id": 7, "from": "idle", "cause": "login"}
    assert body["agent"]["state"] == "idle" and body["agent"]["label"] == "空闲"
    assert body["agent"]["queues"] == [{"queue": "general_queue", "penalty": 2, "paused": False, "reason": None},
                                       {"queue": "social_security", "penalty": 0, "paused": False, "reason": None}]


def test_agents_settings_are_checked(tmp_path):
    text = (Path(__file__).resolve().parents[1] / "config" / "hotline.toml").read_text(encoding="utf-8")
    section = re.search(r"(?ms)^\[agents\]\n.*?\n\n", text).group(0)
    for body, error in (('pause_reasons = ["午休", "午休"]', "twice"), ("pause_reasons = []", "pause_reasons"),
                        ("wrapup_max = 0", "wrapup_max"), ("panel_interval = -1", "panel_interval"),
                        ("lunch = 1", "unknown")):
        broken = tmp_path / "hotline.toml"
        broken.write_text(text.replace(section, f"[agents]\n{body}\n\n"), encoding="utf-8")
        with pytest.raises(SettingsError, match=error):
            load_settings(broken, env={})
    assert load_settings(env={}).agents.pause_reasons[:4] == ("午休", "培训", "整理工单", "会议")

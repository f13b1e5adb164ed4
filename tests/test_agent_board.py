"""The agent board's decisions, without sockets: captured events (normalised as
the AMI layer hands them over) in, states out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agents.board import AgentBoard, AgentStatus, RingNoAnswer, StateChange
from agents.membership import member_state
from agents.panel import QueuePanel
from ivr.ami.message import normalize
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import Transcript, recorded_event
from tests.standin.framing import parse_message
from tests.standin.templates import Template

MENU = Transcript.load(ASTERISK_FIXTURES / "call-menu-queue-answered.jsonl")
AT = datetime(2026, 11, 22, 2, 16, 35, tzinfo=timezone.utc)
AGENT = "PJSIP/8006"


def event(name: str, occurrence: int = 1, **values: str) -> dict:
    """A captured event of capture 2, some values replaced, as subscribers get it."""
    return normalize(parse_message(Template(recorded_event(MENU, name, occurrence)).render(values)))


def logged_in(board: AgentBoard, **values: str) -> None:
    board.apply(event("QueueMemberAdded", **values), AT)


def at(seconds: float) -> datetime:
    return AT + timedelta(seconds=seconds)


def test_a_pause_during_a_call_shows_after_the_wrap_up():
    board = AgentBoard(wrapup_max=60)
    logged_in(board)
    board.apply(event("AgentCalled"), at(1))
    board.apply(event("AgentConnect"), at(2))
    paused = board.apply(event("QueueMemberStatus", Paused="1", PausedReason="会议", Status="2"), at(3))
    assert board.state(AGENT).status is AgentStatus.IN_CALL
    assert all(not c.moved for c in paused if isinstance(c, StateChange))     # no new state to log
    board.apply(event("AgentComplete"), at(4))
    board.apply(event("QueueMemberStatus", 2, Paused="1", PausedReason="会议"), at(4.1))
    assert board.state(AGENT).status is AgentStatus.WRAP_UP
    done = board.finish_wrapup(AGENT, at(10))
    assert (done.before, done.agent.status, done.agent.reason, done.cause) == (
        AgentStatus.WRAP_UP, AgentStatus.PAUSED, "会议", "done")


def test_the_phone_busy_before_agent_connect_still_says_answered_and_call_ended():
    """Capture 5's order: the device is in use before AgentConnect, and still in use
    at AgentComplete; the log says what happened, not "device"."""
    board = AgentBoard(wrapup_max=60)
    logged_in(board)
    changes = []
    for name, values in (("AgentCalled", {}), ("QueueMemberStatus", {"Status": "2"}), ("AgentConnect", {}),
                         ("AgentComplete", {}), ("QueueMemberStatus", {"Status": "1"})):
        changes += board.apply(event(name, **values), at(len(changes) + 1))
    moved = [(c.before.value, c.agent.status.value, c.cause) for c in changes if c.moved]
    assert moved == [("idle", "ringing", "offered"), ("ringing", "in_call", "answered"),
                     ("in_call", "wrap_up", "call_ended")]
    assert [c.agent.call.connected for c in changes if not c.moved and c.agent.call] == [True]


def test_an_offer_ends_when_the_caller_abandons_or_another_agent_answers():
    board = AgentBoard(wrapup_max=60)
    logged_in(board)
    logged_in(board, Interface="PJSIP/8007", MemberName="李四", StateInterface="PJSIP/8007")
    board.apply(event("AgentCalled"), at(1))
    board.apply(event("AgentCalled", Interface="PJSIP/8007", MemberName="李四", DestChannel="PJSIP/8007-00000002",
                      DestUniqueid="1795313798.2"), at(1))
    assert {s.status for s in board.states()} == {AgentStatus.RINGING}
    board.apply(event("AgentConnect"), at(2))
    # ringall: app_queue hangs up the other agent's leg
    ended = board.apply({"event": "Hangup", "uniqueid": "1795313798.2", "channel": "PJSIP/8007-00000002"}, at(2))
    assert [(c.agent.interface, c.agent.status, c.cause) for c in ended] == [
        ("PJSIP/8007", AgentStatus.IDLE, "offer_ended")]
    board.apply(event("AgentCalled", Uniqueid="1795313900.9", Linkedid="1795313900.9", Interface="PJSIP/8007",
                      MemberName="李四", DestUniqueid="1795313900.10"), at(3))
    gone = board.apply({"event": "QueueCallerAbandon", "queue": "social_security", "uniqueid": "1795313900.9"}, at(5))
    assert [(c.agent.interface, c.agent.status, c.cause) for c in gone] == [
        ("PJSIP/8007", AgentStatus.IDLE, "caller_abandoned")]
    assert board.state(AGENT).status is AgentStatus.IN_CALL


def test_ring_no_answer_is_a_report_and_the_agent_is_free_again():
    board = AgentBoard(wrapup_max=60)
    logged_in(board)
    board.apply(event("AgentCalled"), at(1))
    facts = board.apply({**event("AgentCalled"), "event": "AgentRingNoAnswer", "ringtime": "15000"}, at(16))
    report = next(f for f in facts if isinstance(f, RingNoAnswer))
    assert (report.queue, report.uniqueid, report.ring_ms, report.caller_number) == (
        "social_security", "1795313795.0", 15000, "13800138000")
    assert board.state(AGENT).status is AgentStatus.IDLE


def test_rebuild_logs_out_the_unlisted_ends_calls_whose_channels_are_gone_and_keeps_pause_times():
    board = AgentBoard(wrapup_max=60)
    logged_in(board)
    logged_in(board, Interface="PJSIP/8007", MemberName="李四", StateInterface="PJSIP/8007")
    board.apply(event("AgentCalled"), at(1))
    board.apply(event("AgentConnect"), at(2))
    listed = member_state(normalize({"Event": "QueueMember", "Queue": "social_security", "Name": "坐席8006",
                                     "Location": AGENT, "Penalty": "0", "Status": "1", "Paused": "1",
                                     "PausedReason": "培训", "LastPause": "1795313000", "InCall": "0"}))
    changes = board.rebuild([listed], live_uniqueids=set(), at=at(30))
    assert {(c.agent.interface, c.agent.status, c.cause) for c in changes} == {
        (AGENT, AgentStatus.WRAP_UP, "resync"), ("PJSIP/8007", AgentStatus.OFFLINE, "resync")}
    assert board.finish_wrapup(AGENT, at(31)).agent.status is AgentStatus.PAUSED
    assert board.state(AGENT).since == datetime.fromtimestamp(1795313000, tz=timezone.utc)
    assert board.state(AGENT).reason == "培训"


def test_panel_longest_wait_and_rebuild_from_queue_entries():
    panel = QueuePanel([("social_security", "social_security", "社会保险、就业"), ("tax", "tax", "税务")])
    assert panel.apply(event("QueueCallerJoin"), at(0))
    assert panel.apply({**event("QueueCallerJoin"), "uniqueid": "1795313799.7"}, at(5))
    view = {v.queue: v for v in panel.view([])}
    assert view["social_security"].waiting == 2 and view["social_security"].longest_wait(at(20)) == 20
    assert panel.apply(event("QueueCallerLeave"), at(21))
    assert not panel.apply(event("QueueCallerLeave"), at(21))      # twice: nothing left to remove
    panel.rebuild([{"event": "QueueEntry", "queue": "tax", "uniqueid": "1.1", "wait": "42"}], at(60))
    view = {v.queue: v for v in panel.view([])}
    assert view["social_security"].waiting == 0
    assert view["tax"].waiting == 1 and view["tax"].longest_wait(at(60)) == 42

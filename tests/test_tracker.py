"""The call tracker on the event streams captured from Asterisk 22 (no sockets)."""

from datetime import datetime, timezone

from hotline.facts import ChangeSet
from ivr.calls.store import merge_calls
from ivr.ami.message import normalize
from ivr.calls.tracker import CallTracker
from tests.ami_text import recorded_events
from tests.conftest import ASTERISK_FIXTURES

AT = datetime(2026, 11, 22, 2, 16, 35, tzinfo=timezone.utc)


def run(tracker: CallTracker, name: str) -> ChangeSet:
    changes = ChangeSet()
    for event in recorded_events(ASTERISK_FIXTURES / name):
        changes.extend(tracker.apply(normalize(event), AT))
    return changes


def merged_call(changes: ChangeSet, linkedid: str) -> dict:
    """The call's row as write_calls would upsert it from this batch."""
    rows = {r["linkedid"]: r for r in merge_calls(changes.calls, AT)}
    return rows[linkedid]


def tracker(settings) -> CallTracker:
    return CallTracker({d.queue: d.code for d in settings.departments})


def test_menu_call_answered_by_agent(settings):
    changes = run(tracker(settings), "call-menu-queue-answered.ami")
    call = merged_call(changes, "1795313795.0")
    assert call["caller_number"] == "13800138000"
    assert call["caller_name"] == "王小明"
    assert call["queue"] == "social_security" and call["department"] == "social_security"
    assert call["agent_interface"] == "PJSIP/8006" and call["agent_name"] == "坐席8006"
    assert call["talk_seconds"] == 4
    assert call["hangup_cause"] == 16 and "ended_at" in call
    assert "abandoned_at" not in call
    kinds = [e.kind for e in changes.timeline]
    for kind in ("channel.created", "menu.started", "queue.joined", "agent.ringing", "dial.begin",
                 "agent.connected", "bridge.enter", "agent.completed", "channel.hangup", "cdr"):
        assert kind in kinds, kind
    assert kinds.index("queue.joined") < kinds.index("agent.connected") < kinds.index("agent.completed")
    # The agent leg belongs to the caller's call, not to a call of its own.
    assert {e.linkedid for e in changes.timeline} == {"1795313795.0"}
    assert [r.asterisk_path for r in changes.recordings] == [
        "/var/spool/asterisk/monitor/2026/11/22/1795313795.0.wav"
    ]


def test_abandoned_call(settings):
    changes = run(tracker(settings), "call-queue-abandoned.ami")
    call = merged_call(changes, "1795313813.2")
    assert call["queue"] == "general_queue" and call["department"] == "general"
    assert call["hold_seconds"] == 6 and "abandoned_at" in call
    assert "agent_answered_at" not in call
    assert call["hangup_cause"] == 0  # Cause 0 (Unknown) on an abandon, as captured
    assert "queue.abandoned" in [e.kind for e in changes.timeline]


def test_same_events_twice_give_the_same_keys(settings):
    first = run(tracker(settings), "call-menu-queue-answered.ami")
    second = run(tracker(settings), "call-menu-queue-answered.ami")
    assert [e.dedupe_key for e in first.timeline] == [e.dedupe_key for e in second.timeline]
    assert len({e.dedupe_key for e in first.timeline}) == len(first.timeline)


def test_redirected_call_keeps_one_record_and_late_cdrs(settings):
    changes = run(tracker(settings), "actions.ami")
    call = merged_call(changes, "1795313835.4")
    assert call["agent_interface"] == "PJSIP/8006"
    assert call["talk_seconds"] == 7  # AgentComplete only at the caller's final hangup
    cdrs = [e for e in changes.timeline if e.kind == "cdr" and e.linkedid == "1795313835.4"]
    assert len(cdrs) == 2  # queue leg, then the Dial to 8025 after the Redirect


def test_queue_member_events_become_member_states():
    from agents.membership import MEMBER_EVENTS, member_state

    members = [member_state(normalize(e), removed=e["Event"] == "QueueMemberRemoved")
               for e in recorded_events(ASTERISK_FIXTURES / "actions.ami") if e.get("Event") in MEMBER_EVENTS]
    members = [m for m in members if m.interface == "PJSIP/8006"]
    assert any(m.paused and m.paused_reason == "午休" for m in members)
    assert members[-1].removed


def test_resync_and_lost_calls(settings):
    t = tracker(settings)
    t.apply(normalize({"Event": "Newchannel", "Uniqueid": "1.1", "Linkedid": "1.1",
                       "Channel": "PJSIP/9000-00000001"}), AT)
    changes = t.resync([normalize({"Event": "CoreShowChannel", "Uniqueid": "2.2", "Linkedid": "2.2",
                                   "Channel": "PJSIP/9000-00000002", "Duration": "00:01:05",
                                   "Application": "Queue"})], AT, session=2)
    assert [c.linkedid for c in changes.calls] == ["2.2"]
    assert (AT - changes.calls[0].fields["started_at"]).total_seconds() == 65
    lost = t.close_lost_calls([{"linkedid": "1.1", "recording_path": "/x/1.1.wav"},
                               {"linkedid": "2.2", "recording_path": None}], AT)
    assert [c.linkedid for c in lost.calls] == ["1.1"]
    assert [r.asterisk_path for r in lost.recordings] == ["/x/1.1.wav"]


def test_placeholders_are_not_stored_as_names(settings):
    """Issue 9, item 7 (capture e2e: `CallerIDName: <unknown>`, and a persisted member
    added without a name, which app_queue reports as MemberName: PJSIP/8006)."""
    t = tracker(settings)
    changes = t.apply(normalize({"Event": "Newchannel", "Uniqueid": "1.1", "Linkedid": "1.1",
                                 "Channel": "PJSIP/carrier-00000001", "CallerIDNum": "13800138000",
                                 "CallerIDName": "<unknown>", "Exten": "2512345"}), AT)
    assert "caller_name" not in changes.calls[0].fields
    assert changes.calls[0].fields["caller_number"] == "13800138000"
    changes = t.apply(normalize({"Event": "AgentConnect", "Uniqueid": "1.1", "Linkedid": "1.1",
                                 "Queue": "social_security", "Interface": "PJSIP/8006",
                                 "MemberName": "PJSIP/8006", "HoldTime": "3"}), AT)
    assert "agent_name" not in changes.calls[0].fields
    assert changes.calls[0].fields["agent_interface"] == "PJSIP/8006"
    named = t.apply(normalize({"Event": "AgentConnect", "Uniqueid": "1.1", "Linkedid": "1.1",
                               "Interface": "PJSIP/8006", "MemberName": "坐席8006"}), AT)
    assert named.calls[0].fields["agent_name"] == "坐席8006"

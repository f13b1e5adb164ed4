"""The event hub: committed rows reach in-process subscribers, browsers over
WebSocket, and other processes through PostgreSQL NOTIFY; a replay publishes
nothing; a slow browser is dropped without holding anything up."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import CORE, create_app
from hotline.facts import ChangeSet, Committed, TimelineEntry
from hotline.fanout import Fanout
from hotline.hub import NOTIFY_LIMIT, EventHub
from tests.bridge_harness import bearer, eventually, running

AT = datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc)


def entry(linkedid: str, key: str, kind: str = "menu.key", **detail) -> TimelineEntry:
    return TimelineEntry(linkedid, linkedid, AT, kind, detail or {"key": "3"}, key)


def test_encode_splits_under_the_notify_limit_and_truncates_a_giant_row():
    hub = EventHub(origin="test")
    rows = [entry(f"1.{i}", f"k{i}", note="说明" * 40) for i in range(200)]
    rows.append(entry("9.9", "huge", note="长" * 5000))
    messages = hub.encode(rows)
    assert len(messages) > 1
    assert all(len(m.encode()) <= NOTIFY_LIMIT for m in messages)
    decoded = [row for m in messages for row in json.loads(m)["timeline"]]
    assert [r["linkedid"] for r in decoded] == [r.linkedid for r in rows]
    assert decoded[-1]["truncated"] is True and decoded[-1]["detail"] == {}
    assert all("truncated" not in r for r in decoded[:-1])


def test_receive_skips_own_origin_and_rejects_garbage(caplog):
    ours, theirs = EventHub(origin="a"), EventHub(origin="b")
    heard: list[Committed] = []
    ours.subscribe(heard.append)
    ours.receive(ours.encode([entry("1.1", "k")])[0])          # our own NOTIFY, already published
    assert heard == []
    ours.receive(theirs.encode([entry("2.2", "k")])[0])
    assert [(c.origin, c.local, [t.linkedid for t in c.timeline]) for c in heard] == [("b", False, ["2.2"])]
    ours.receive("not json")
    assert "hub.bad_notification" in caplog.text and len(heard) == 1


def test_a_subscriber_that_raises_does_not_stop_the_others(caplog):
    hub = EventHub(origin="a")
    heard: list[Committed] = []

    def broken(_batch):
        raise RuntimeError("feature bug")

    hub.subscribe(broken)
    hub.subscribe(heard.append)
    hub.publish(Committed(timeline=[entry("1.1", "k")], committed_at=0.0, origin="a"))
    assert len(heard) == 1 and "hub.subscriber_failed" in caplog.text


async def test_live_messages_reach_their_topic_here_and_in_other_processes():
    """A feature's live fact (not a timeline row): published at once to this
    process's subscribers and browsers of its topic; another process publishes the
    same text it receives through NOTIFY; our own NOTIFY is skipped."""
    ours, theirs = EventHub(origin="a"), EventHub(origin="b")
    heard: list[dict] = []
    theirs.subscribe_live("agents", heard.append)
    committed: list[Committed] = []
    theirs.subscribe(committed.append)
    agents_browser, calls_browser = theirs.browsers.connect(["agents"]), theirs.browsers.connect(["calls"])
    text = ours.publish_live("agents", {"type": "state", "agent": {"extension": "8006", "label": "空闲"}})
    assert json.loads(text) == {"topic": "agents", "origin": "a", "type": "state",
                                "agent": {"extension": "8006", "label": "空闲"}}
    theirs.receive(text)
    theirs.receive(theirs.publish_live("agents", {"type": "state"}))   # its own, already delivered
    assert [m["origin"] for m in heard] == ["a", "b"] and committed == []
    assert await agents_browser.next_message() == text.encode()
    assert calls_browser._queue.empty()


async def test_slow_browser_is_dropped_and_others_keep_receiving():
    fanout = Fanout(queue_size=3)
    slow, fast = fanout.connect(["calls"]), fanout.connect(["calls"])
    for i in range(5):
        fanout.publish("calls", f"m{i}".encode())
        assert await fast.next_message() == f"m{i}".encode()
    assert slow.dropped_reason == "more than 3 messages behind"
    assert fanout.clients("calls") == 1 and fanout.dropped == 1
    assert [await slow.next_message() for _ in range(4)] == [b"m0", b"m1", b"m2", None]


async def test_writer_publishes_only_rows_new_to_the_database(settings, db):
    app = create_app(settings, bridge=False, pool=db)
    async with running(app) as core:
        heard: list[Committed] = []
        core.hub.subscribe(heard.append)
        core.writer.submit(ChangeSet(timeline=[entry("5.5", "a"), entry("5.5", "b")]))
        await core.writer.flush()
        core.writer.submit(ChangeSet(timeline=[entry("5.5", "a"), entry("5.5", "c")]))   # a is a replay
        await core.writer.flush()
    assert [[t.dedupe_key for t in c.timeline] for c in heard] == [["a", "b"], ["c"]]
    assert all(c.local and c.origin == core.hub.origin for c in heard)


async def test_browser_receives_committed_rows_over_websocket(settings, db):
    app = create_app(settings, bridge=False, pool=db)
    async with TestClient(TestServer(app)) as client:
        core = app[CORE]
        socket = await client.ws_connect("/ws/events?topics=calls", headers=await bearer(db))
        await eventually(lambda: _true(core.hub.browsers.clients("calls") == 1), 5, "the browser to attach")
        core.writer.submit(ChangeSet(timeline=[entry("6.6", "w1", kind="voice.heard", transcript="公积金")]))
        message = await socket.receive(timeout=5)
        assert message.type is WSMsgType.TEXT
        body = json.loads(message.data)
        assert body["topic"] == "calls" and body["origin"] == core.hub.origin
        assert body["timeline"][0]["kind"] == "voice.heard"
        assert body["timeline"][0]["detail"] == {"transcript": "公积金"}
        await socket.close()
        await eventually(lambda: _true(core.hub.browsers.clients() == 0), 5, "the browser to detach")
        assert (await client.get("/ws/events?topics=secrets", headers=await bearer(db))).status == 400


async def test_two_cores_on_one_database_hear_each_other(settings, db):
    first = create_app(settings, bridge=False, pool=db)
    second = create_app(settings, bridge=False, pool=db)
    async with running(first) as a, running(second) as b:
        await a.relay.wait_listening(5)
        await b.relay.wait_listening(5)
        heard_by_b: list[Committed] = []
        b.hub.subscribe(heard_by_b.append)
        local_only: list[Committed] = []
        b.hub.subscribe(local_only.append, remote=False)
        a.writer.submit(ChangeSet(timeline=[entry("7.7", "x")]))
        await a.writer.flush()
        await eventually(lambda: _true(heard_by_b), 5, "b to hear a's commit")
    assert [t.linkedid for t in heard_by_b[0].timeline] == ["7.7"] and not heard_by_b[0].local
    assert local_only == []


async def _true(value: object) -> object:
    return value


"""The supervisors' report on a real PostgreSQL: a simulated day of calls
(answered after every kind of wait, abandoned, given up by the queue, served
by the voice menu, still going on, on the days around it and in other
departments), with what the menu heard, unplaced questions, tickets and
survey answers, written as the call writer and the services write them; the
report's figures are compared with the same figures worked out here in
Python from the rows the test made. Then the captured Asterisk calls through
the bridge, the JSON and CSV routes with their roles and audit, and
``hotline report``."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import create_app
from hotline.cli import main
from knowledge.store import seed_from_files
from reports.figures import period_of
from reports.service import build_report
from tests.bridge_harness import bearer, replay_call
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AgiCaller, Emulator, Transcript
from tests.test_bridge_calls import ABANDONED_CALL, BREAK_CALL

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 20)
DEPARTMENTS = ("social_security", "tax", "housing_fund", "civil_affairs")
ITEMS = {"social_security": "social_security.transfer", "tax": "tax.iit_annual",
         "housing_fund": "housing_fund.withdraw_rent", "civil_affairs": "civil_affairs.marriage"}
RATINGS = ("满意", "基本满意", "不满意")


@dataclass
class Call:
    linkedid: str
    started_at: datetime
    department: str | None
    kind: str                    # answered | abandoned | unanswered | self_served | menu_hangup | waiting | talking
    wait: float | None = None    # seconds from joining the queue
    hold_reported: bool = True   # Asterisk's HoldTime in the row (else only the timestamps)
    item: str | None = None      # what the voice menu matched
    unplaced: list[str] = field(default_factory=list)
    ticket: dict | None = None

    @property
    def queued(self) -> bool:
        return self.kind in ("answered", "abandoned", "unanswered", "waiting", "talking")


def simulated_day(seed: int = 11, n: int = 400) -> list[Call]:
    """A day's mix, plus calls the evening before and the morning after."""
    rng = random.Random(seed)
    calls = []
    kinds = (["answered"] * 62 + ["abandoned"] * 9 + ["unanswered"] * 3 + ["self_served"] * 14
             + ["menu_hangup"] * 8 + ["waiting"] * 2 + ["talking"] * 2)
    start = datetime(2026, 11, 19, 22, 0, tzinfo=TZ)
    for i in range(n):
        at = start + timedelta(seconds=i * (60 * 60 * 36) / n + rng.random() * 30)   # 36 h around the day
        kind = rng.choice(kinds)
        department = rng.choice(DEPARTMENTS) if kind != "menu_hangup" or rng.random() < 0.5 else None
        call = Call(f"1795{i:06d}.{i}", at, department, kind)
        if call.queued:
            call.wait = float(rng.choice([0, 3, 12, 25, 40, 59, 60, 61, 75, 120, 200, 410]) + rng.randint(0, 3))
            call.hold_reported = kind in ("answered", "abandoned") and rng.random() < 0.85
            if not call.hold_reported:        # only the timestamps: to the millisecond
                call.wait += rng.randint(1, 999) / 1000
        if department and rng.random() < 0.7:
            call.item = ITEMS[department] if rng.random() < 0.8 else "housing_fund.balance"
        if kind in ("self_served",):
            call.item = call.item or ITEMS[department or "tax"]
        if rng.random() < 0.12:
            call.unplaced = [rng.choice(["我家门口的路灯坏了", "想问一下养狗要办什么证", "孩子上学的事"])]
        if rng.random() < 0.08 and kind != "talking":
            call.ticket = {"state": rng.choice(["to_verify", "in_progress", "answered", "closed", "closed",
                                                "dispatched_12345"]),
                           "rating": rng.choice(RATINGS + (None, None)),
                           "late": rng.random() < 0.3}
        calls.append(call)
    return calls


async def store_day(db, calls: list[Call], now: datetime) -> None:
    """The rows the call writer, the voice menu and the tickets service write."""
    call_rows, events, unplaced, tickets = [], [], [], []
    for c in calls:
        queued_at = c.started_at + timedelta(seconds=20) if c.queued else None
        # Asterisk's HoldTime, when the queue reports it, is what counts; the
        # timestamps around it differ a little (the event arrives later).
        waited_until = queued_at + timedelta(seconds=c.wait + (0.7 if c.hold_reported else 0)) if c.queued else None
        answered_at = waited_until if c.kind in ("answered", "talking") else None
        abandoned_at = waited_until if c.kind == "abandoned" else None
        ended_at = None if c.kind in ("waiting", "talking") else (
            (waited_until or c.started_at + timedelta(seconds=15)) + timedelta(seconds=90))
        if c.kind == "unanswered":
            ended_at = waited_until
        hold = int(c.wait) if c.queued and c.hold_reported else None
        call_rows.append((c.linkedid, "1380013" + c.linkedid[-4:], c.started_at, c.department,
                          c.department if c.queued else None, queued_at, answered_at, abandoned_at, hold, ended_at,
                          "PJSIP/8006" if answered_at else None))
        events.append((c.linkedid, c.started_at + timedelta(seconds=5), "menu.started", {}))
        if c.item:
            reaction = "played_answer" if c.kind == "self_served" else "routed"
            events.append((c.linkedid, c.started_at + timedelta(seconds=10), "voice.heard",
                           {"transcripts": ["我想问一下"], "item": c.item, "department": c.department,
                            "reaction": reaction, "confidence": 0.9}))
        if c.queued:
            events.append((c.linkedid, c.started_at + timedelta(seconds=12), "menu.routed",
                           {"department": c.department, "queue": c.department,
                            "reason": "speech" if c.item else "key"}))
        for text in c.unplaced:
            unplaced.append((text, c.linkedid, c.started_at + timedelta(seconds=8)))
        if c.ticket:
            t = c.ticket
            opened = (ended_at or c.started_at) + timedelta(minutes=1)
            late = t["late"]
            verified = None if t["state"] == "to_verify" else opened + timedelta(hours=3 if late else 1)
            answered = opened + timedelta(hours=30 if late else 5) if t["state"] in ("answered", "closed") else None
            tickets.append((c.linkedid, c.department, t["state"], opened, opened + timedelta(hours=2), verified,
                            opened + timedelta(hours=24), answered,
                            answered + timedelta(hours=1) if t["state"] == "closed" else None,
                            opened + timedelta(hours=1) if t["state"] == "dispatched_12345" else None,
                            t["rating"]))
    async with db.acquire() as conn:
        await conn.executemany(
            """INSERT INTO calls (linkedid, caller_number, started_at, department, queue, queued_at,
                                  agent_answered_at, abandoned_at, hold_seconds, ended_at, agent_interface)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""", call_rows)
        await conn.executemany(
            """INSERT INTO call_events (linkedid, uniqueid, occurred_at, kind, detail, dedupe_key)
               VALUES ($1, $1, $2, $3, $4::jsonb, $5)""",
            [(l, at, kind, json.dumps(d, ensure_ascii=False), f"{l}:{kind}") for l, at, kind, d in events])
        await conn.executemany(
            "INSERT INTO unplaced_questions (text, linkedid, created_at) VALUES ($1, $2, $3)", unplaced)
        await conn.executemany(
            """INSERT INTO tickets (source, linkedid, department, state, subject, opened_by, opened_at, verify_due,
                                    verified_at, answer_due, answered_at, closed_at, dispatched_at, survey_rating)
               VALUES ('disposition', $1, $2, $3, '来电问题未解决', 'test', $4, $5, $6, $7, $8, $9, $10, NULL)""",
            [t[:10] for t in tickets])     # the answers are the survey's rows below, not the ticket's copy
        # What the survey stores for each answer: the after-call survey's row (the
        # caller asked twice over: the later answer counts), a 回访 call's row naming
        # the ticket, and unanswered surveys, which count for nothing.
        surveys = []
        for t in tickets:
            linkedid, opened, rating = t[0], t[3], t[10]
            if rating is None:
                surveys.append((linkedid, linkedid, "after_call", None, "no_key", None, opened))
                continue
            surveys.append((linkedid, linkedid, "after_call", None, "rated", "不满意" if rating != "不满意" else "满意",
                            opened - timedelta(minutes=1)))
            surveys.append((f"{linkedid}-fu", f"{linkedid}-fu", "follow_up", linkedid, "rated", rating, opened))
        await conn.executemany(
            """INSERT INTO call_surveys (linkedid, uniqueid, kind, ticket_id, outcome, rating, asked, started_at,
                                         finished_at)
               VALUES ($1, $2, $3, (SELECT id FROM tickets WHERE linkedid = $4), $5, $6, 1, $7, $7)""", surveys)


def percentile_cont(values: list[Decimal], p: Decimal) -> Decimal:
    """PostgreSQL's percentile_cont: linear between the two nearest values."""
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def tenths(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.1"), ROUND_HALF_UP))


def expected(calls: list[Call], first: date, last: date, department: str | None, now: datetime) -> dict:
    """The figures, worked out from the test's own calls (not from the database)."""
    since = datetime.combine(first, datetime.min.time(), tzinfo=TZ)
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=TZ)
    mine = [c for c in calls if since <= c.started_at < until and (department is None or c.department == department)]
    offered = [c for c in mine if c.queued and c.kind not in ("waiting",)]
    answered = [c for c in offered if c.kind in ("answered", "talking")]
    abandoned = [c for c in offered if c.kind == "abandoned"]
    waits = [Decimal(int(c.wait)) if c.hold_reported else Decimal(str(c.wait)) for c in offered]
    ticketed = [c for c in mine if c.ticket]
    return {
        "calls": len(mine), "offered": len(offered), "answered": len(answered), "abandoned": len(abandoned),
        "answered_within": sum(1 for c in answered if c.wait <= 60),
        "self_served": sum(1 for c in mine if c.kind == "self_served"),
        "escalated": len(ticketed),
        "wait_mean": tenths(sum(waits) / len(waits)), "wait_p90": tenths(percentile_cont(waits, Decimal("0.9"))),
        "wait_max": float(max(waits)),
        "hot": sorted(Counter(c.item for c in mine if c.item).items(), key=lambda x: (-x[1], x[0]))[:10],
        "unplaced": sum(len(c.unplaced) for c in mine),
        "ratings": {r: sum(1 for c in ticketed if c.ticket["rating"] == r) for r in RATINGS},
    }


@pytest.fixture
async def day(db):
    await seed_from_files(db)
    calls = simulated_day()
    async with db.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
    await store_day(db, calls, now)
    return calls, now


def period(settings, first=DAY, last=DAY, department=None):
    return period_of(first.isoformat(), last.isoformat(), department, TZ,
                     {d.code: d.name for d in settings.departments}, DAY)


async def test_the_report_equals_the_figures_worked_out_from_the_calls(settings, db, day):
    calls, now = day
    for department in (None, "tax"):
        async with db.acquire() as conn:
            report = await build_report(conn, settings, period(settings, department=department))
        want = expected(calls, DAY, DAY, department, now)
        got = report["calls"]
        assert {k: got[k] for k in ("calls", "offered", "answered", "abandoned", "answered_within", "self_served",
                                    "escalated")} == {k: want[k] for k in ("calls", "offered", "answered", "abandoned",
                                                                           "answered_within", "self_served",
                                                                           "escalated")}, department
        assert got["calls"] > (40 if department else 200)     # the day has real volume
        assert got["answer_rate"] == round(want["answered"] / want["offered"], 4)
        assert got["abandon_rate"] == round(want["abandoned"] / want["offered"], 4)
        assert got["service_level"] == round(want["answered_within"] / want["offered"], 4)
        assert got["self_service_rate"] == round(want["self_served"] / want["calls"], 4)
        assert got["escalation_rate"] == round(want["escalated"] / want["calls"], 4)
        assert (got["wait"]["mean"], got["wait"]["p90"], got["wait"]["longest"]) == \
            (want["wait_mean"], want["wait_p90"], want["wait_max"])
        assert [(t["item"], t["calls"]) for t in report["hot_topics"]] == want["hot"]
        assert report["unanswered_questions"]["total"] == want["unplaced"]
        assert report["satisfaction"]["by_rating"] == want["ratings"]
        answers = sum(want["ratings"].values())
        assert report["satisfaction"]["satisfied_rate"] == (
            round((want["ratings"]["满意"] + want["ratings"]["基本满意"]) / answers, 4) if answers else None)
    hot = dict((t["item"], t) for t in report["hot_topics"])
    assert hot["tax.iit_annual"]["question"].startswith("个人所得税")      # named from the knowledge base


async def test_ticket_figures_count_deadlines_overdue_and_the_12345_share(settings, db, day):
    calls, now = day
    async with db.acquire() as conn:
        report = await build_report(conn, settings, period(settings, DAY - timedelta(days=1), DAY + timedelta(days=1)))
        rows = await conn.fetch("SELECT * FROM tickets")
    tickets = report["tickets"]
    assert tickets["opened"] == len(rows) > 10
    assert tickets["dispatched"] == sum(1 for r in rows if r["dispatched_at"])
    assert tickets["dispatch_rate"] == round(tickets["dispatched"] / len(rows), 4)
    assert tickets["dispatch_within_goal"] == (tickets["dispatch_rate"] <= 0.10)
    assert tickets["closed"] == sum(1 for r in rows if r["state"] == "closed")
    # Opened on 19-21 Nov 2026 with 2 h / 24 h deadlines: every one has passed by now.
    assert tickets["verified_in_time"] == sum(1 for r in rows if r["verified_at"] and r["verified_at"] <= r["verify_due"])
    assert tickets["verify_due_or_met"] == len(rows)
    assert tickets["overdue"] == sum(1 for r in rows if r["state"] != "closed" and (
        (r["verified_at"] is None and r["state"] in ("to_verify", "reopened"))
        or (r["answered_at"] is None and r["state"] in ("to_verify", "reopened", "in_progress"))))
    assert tickets["overdue"] > 0


async def test_an_empty_period_gives_no_rates_not_zero(settings, db):
    async with db.acquire() as conn:
        report = await build_report(conn, settings, period(settings, date(2020, 1, 1), date(2020, 1, 2)))
    assert report["calls"]["calls"] == 0 and report["calls"]["answer_rate"] is None
    assert report["calls"]["wait"]["mean"] is None and report["tickets"]["dispatch_rate"] is None
    assert report["satisfaction"] == {"answers": 0, "by_rating": {r: 0 for r in RATINGS}, "satisfied_rate": None}


async def test_the_captured_calls_through_the_bridge_are_counted_as_stored(settings, db):
    """Two captured Asterisk calls replayed through the real bridge and call
    writer: one queued straight away and abandoned after 6 s, one whose caller
    failed the keypad menu three times, was sent to general_queue and
    abandoned after 5 s."""
    abandoned = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    first = await replay_call(abandoned.connection(1), settings, db, ABANDONED_CALL)
    gave_up = Transcript.load(ASTERISK_FIXTURES / "call-asyncagi-break-fallback.jsonl")
    await replay_call(gave_up.connection(1), settings, db, BREAK_CALL,
                      emulator=Emulator(agi=AgiCaller(inputs=["*", None, "*"])))
    local = first["started_at"].astimezone(TZ).date()
    async with db.acquire() as conn:
        report = await build_report(conn, settings, period(settings, local, local))
    calls = report["calls"]
    assert (calls["calls"], calls["offered"], calls["answered"], calls["abandoned"]) == (2, 2, 0, 2)
    assert calls["abandon_rate"] == 1.0 and calls["service_level"] == 0.0
    assert (calls["wait"]["mean"], calls["wait"]["longest"]) == (5.5, 6.0)
    assert [(i["department"], i["calls"], i["by_speech"]) for i in report["intents"]] == [("general", 1, 0)]


@pytest.fixture
async def client(settings, db):
    async with TestClient(TestServer(create_app(settings, bridge=False, pool=db))) as client:
        yield client


async def test_the_json_and_csv_routes_need_a_supervisor_and_are_audited(client, db, day):
    supervisor, agent = await bearer(db, "supervisor"), await bearer(db, "agent")
    query = f"from={DAY}&to={DAY}&department=tax"
    assert (await client.get(f"/api/reports?{query}", headers=agent)).status == 403
    assert (await client.get(f"/api/reports?{query}")).status == 401
    body = await (await client.get(f"/api/reports?{query}", headers=supervisor)).json()
    assert body["report"]["period"] == {"from": "2026-11-20", "to": "2026-11-20", "department": "tax",
                                        "department_name": "税务"}
    response = await client.get(f"/api/reports.csv?{query}", headers=supervisor)
    table = list(csv.reader(io.StringIO((await response.read()).decode("utf-8-sig"))))
    assert table[0] == ["分类", "指标", "数值"]
    figures = {(r[0], r[1]): r[2] for r in table[1:]}
    assert figures[("来电", "来电总数")] == str(body["report"]["calls"]["calls"])
    assert figures[("来电", "60秒内接听率")] == f"{body['report']['calls']['service_level'] * 100:.1f}%"
    for bad in ("from=2026-11-31", "from=2026-11-20&to=2026-11-19", "from=2025-01-01&to=2026-11-20",
                "from=2026-11-20&department=mars"):
        assert (await client.get(f"/api/reports?{bad}", headers=supervisor)).status == 400, bad
    async with db.acquire() as conn:
        audited = await conn.fetch("SELECT detail FROM audit_log WHERE action = 'report.viewed' ORDER BY id")
    assert [json.loads(r["detail"])["form"] for r in audited] == ["json", "csv"]


async def test_hotline_report_prints_the_report(settings, db, database_url, day, capsys, monkeypatch):
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    assert await asyncio.to_thread(main, ["report", "--from", str(DAY), "--department", "tax"]) == 0
    printed = json.loads(capsys.readouterr().out)
    async with db.acquire() as conn:
        report = await build_report(conn, settings, period(settings, department="tax"))
    assert printed["calls"] == json.loads(json.dumps(report["calls"]))
    assert await asyncio.to_thread(main, ["report", "--from", str(DAY), "--csv"]) == 0
    assert capsys.readouterr().out.startswith("分类,指标,数值")
    assert await asyncio.to_thread(main, ["report", "--from", "2026-11-20", "--to", "2026-11-01"]) == 2
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'report.viewed' "
                                   "AND actor LIKE 'cli:%'") == 2


async def test_the_page_shows_the_figures_for_supervisors_only(client, db, day, settings):
    supervisor, agent = await bearer(db, "supervisor"), await bearer(db, "agent")
    response = await client.get(f"/reports?from={DAY}&to={DAY}", headers=supervisor)
    html = await response.text()
    assert response.status == 200, html[:300]
    async with db.acquire() as conn:
        report = await build_report(conn, settings, period(settings))
    calls = report["calls"]
    assert f'id="figure-calls"><div class="value">{calls["calls"]}</div>' in html
    assert f'id="figure-answer-rate"><div class="value">{calls["answer_rate"] * 100:.1f}%</div>' in html
    assert f'id="figure-wait-p90"><div class="value">{calls["wait"]["p90"]} 秒</div>' in html
    assert "个人所得税年度汇算怎么办？" in html and 'href="/knowledge/gaps"' in html
    refused = await client.get("/reports", headers=agent)
    assert refused.status == 403 and "无权访问" in await refused.text()
    assert (await client.get("/reports?from=2026-02-30", headers=supervisor)).status == 400

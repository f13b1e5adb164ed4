"""A simulated day of calls through the Asterisk stand-in over AMI into the real
service (bridge → call writer → PostgreSQL), then the supervisors' report
(reports/store.py + figures.py) compared figure by figure with the figures
worked out here from the generated scenario (never from the database).

Each call is a copy of a captured Asterisk 22 call (tests/fixtures/asterisk):
capture 2 (``call-menu-queue-answered``: queued, answered by an agent) for the
answered calls, ``call-queue-abandoned`` for the abandoned ones, and its part
before the queue plus its hangup for the calls that ended in the menu. Each
copy gets its own ids and channels, its queue (so its department), Asterisk's
``HoldTime`` for its wait and a ``Timestamp:`` header on every event
(timestampevents=yes) placing it in the day; the events of all the calls are
sent in time order over one AMI connection, as fast as the bridge reads them
(the day is compressed: the acceleration is printed). The menu's AsyncAGI
events are left out (see bench/ami_throughput.py): the real menu is not driven
here. What it would have written - the spoken menu's ``voice.heard`` rows (the
self-served calls, the hot topics) - is inserted as the menu writes it.
Callbacks: the service itself opens a callback ticket for every caller who
hung up after waiting more than ``abandoned_callback_seconds``; agents'
tickets (未解决) are opened through ``TicketService.open_from_disposition``.

    .venv/bin/python -m bench.report_day [--calls 1500] [--seed 11]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from bench.ami_throughput import call_template, stamp
from hotline.app import create_app
from hotline.logs import configure_logging
from hotline.settings import load_settings
from knowledge.store import seed_from_files
from reports.figures import period_of
from reports.service import build_report
from tests.bridge_harness import running
from tests.pg import create_migrated_database, postgres_server
from tests.standin import AmiStandIn
from tests.test_reports import percentile_cont, tenths
from tickets.http import TICKETS
from tickets.service import DISPOSITION_UNRESOLVED

FIXTURES = Path(__file__).resolve().parent.parent / "tests/fixtures/asterisk"
DEPARTMENTS = ("social_security", "tax", "housing_fund", "general")
ITEMS = {"social_security": "social_security.transfer", "tax": "tax.iit_annual",
         "housing_fund": "housing_fund.withdraw_rent", "general": "housing_fund.balance"}
WAITS = (0, 2, 5, 12, 25, 40, 59, 60, 61, 75, 95, 120, 200, 410)
# The mix: most calls reach an agent; some hang up waiting; some are served by
# the voice menu; some hang up in the menu (keypad, no choice).
QUEUED = ("answered", "abandoned")
KINDS = ["answered"] * 64 + ["abandoned"] * 14 + ["self_served"] * 14 + ["menu_hangup"] * 8


def blocks(name: str) -> list[str]:
    return call_template(FIXTURES / name)


def event_name(block: str) -> str:
    return block.split("\r\n", 1)[0][7:]


@dataclass
class Call:
    number: int
    start: datetime
    kind: str
    department: str | None
    wait: int | None = None          # Asterisk's HoldTime
    item: str | None = None          # what the spoken menu matched
    ticket: bool = False             # an agent marks it 未解决

    @property
    def linkedid(self) -> str:
        return f"{1800000000 + self.number}.{2 * self.number}"


def scenario(day: date, n: int, seed: int, tz: ZoneInfo) -> list[Call]:
    rng = random.Random(seed)
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    calls = []
    for i in range(n):
        start = midnight + timedelta(seconds=60 + i * (86_400 - 1_200) / n + rng.random() * 20)
        kind = rng.choice(KINDS)
        department = None if kind == "menu_hangup" else rng.choice(DEPARTMENTS)
        call = Call(i, start, kind, department)
        if kind in ("answered", "abandoned"):
            call.wait = rng.choice(WAITS) + rng.randint(0, 3)
        if kind == "self_served" or (department and rng.random() < 0.5):
            call.item = ITEMS[department] if rng.random() < 0.85 else "tax.iit_annual"
        call.ticket = kind == "answered" and rng.random() < 0.03
        calls.append(call)
    return calls


class Templates:
    """The captured calls, and a copy of one for each simulated call."""

    def __init__(self) -> None:
        self.answered = blocks("call-menu-queue-answered.ami")
        self.abandoned = blocks("call-queue-abandoned.ami")
        join = next(i for i, b in enumerate(self.abandoned) if event_name(b) == "QueueCallerJoin")
        ending = [b for b in self.abandoned[join:] if event_name(b) in ("Cdr", "Hangup", "SoftHangupRequest")]
        self.menu_only = self.abandoned[:join] + ending
        self._answered_ids = re.compile(r"1795313795\.0|1795313798\.1|PJSIP/(9000|8006)-0000000([01])|"
                                        r"BridgeUniqueid: [0-9a-f-]+|Value: social_security|social_security|HoldTime: \d+")
        self._abandoned_ids = re.compile(r"1795313813\.2|PJSIP/9000-00000002|general_queue|HoldTime: \d+")

    def events(self, call: Call, queues: dict[str, str]) -> list[tuple[float, str]]:
        n = call.number
        queue = queues.get(call.department or "", "general_queue")

        def sub(match: re.Match) -> str:
            text = match.group(0)
            if text == "1795313795.0" or text == "1795313813.2":
                return call.linkedid
            if text == "1795313798.1":
                return f"{1800000000 + n}.{2 * n + 1}"
            if text.startswith("PJSIP/"):
                peer = match.group(1) if match.lastindex else "9000"
                leg = int(match.group(2)) if match.lastindex else 0
                return f"PJSIP/{peer}-{2 * n + leg:08x}"
            if text.startswith("BridgeUniqueid"):
                return f"BridgeUniqueid: day-{n}"
            if text == "Value: social_security":      # the menu's HOTLINE_INTENT: a department code
                return f"Value: {call.department}"
            if text in ("social_security", "general_queue"):
                return queue
            return f"HoldTime: {call.wait}"

        if call.kind == "answered":
            template, ids = self.answered, self._answered_ids
        elif call.kind == "abandoned":
            template, ids = self.abandoned, self._abandoned_ids
        else:
            template, ids = self.menu_only, self._abandoned_ids
        start = call.start.timestamp()
        joined = start + 20.0                       # 20 s in the menu
        waited = joined + (call.wait or 0) + 0.4    # the event comes a little after HoldTime's second
        out, phase = [], 0
        for i, block in enumerate(template):
            name = event_name(block)
            if name == "QueueCallerJoin":
                phase = 1
            elif name in ("AgentConnect", "QueueCallerAbandon"):
                phase = 2
            at = (start + 0.05 * i, joined + 0.01 * i, waited + 0.05 * i + (90 if name == "Hangup" else 0))[phase]
            if call.kind != "answered" and phase == 0 and name in ("Hangup", "Cdr", "SoftHangupRequest"):
                at = start + 30 + 0.01 * i
            out.append((at, ids.sub(sub, block)))
        return out


def rate(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def expected(calls: list[Call], department: str | None, service_level: int, callback_after: int) -> dict:
    """The figures from the scenario alone."""
    # A call's department is the queue's it reached: a call that stayed in the
    # menu has none (the call records give it none).
    mine = [c for c in calls if department is None or (c.department == department and c.kind in QUEUED)]
    offered = [c for c in mine if c.kind in ("answered", "abandoned")]
    answered = [c for c in offered if c.kind == "answered"]
    abandoned = [c for c in offered if c.kind == "abandoned"]
    waits = [Decimal(c.wait) for c in offered]
    within = sum(1 for c in answered if c.wait <= service_level)
    self_served = sum(1 for c in mine if c.kind == "self_served")
    escalated = sum(1 for c in mine if c.ticket or (c.kind == "abandoned" and c.wait > callback_after))
    hot = sorted(Counter(c.item for c in mine if c.item).items(), key=lambda x: (-x[1], x[0]))[:10]
    return {
        "calls": len(mine), "offered": len(offered), "answered": len(answered), "abandoned": len(abandoned),
        "answered_within": within, "self_served": self_served, "escalated": escalated,
        "answer_rate": rate(len(answered), len(offered)), "abandon_rate": rate(len(abandoned), len(offered)),
        "service_level": rate(within, len(offered)), "self_service_rate": rate(self_served, len(mine)),
        "escalation_rate": rate(escalated, len(mine)),
        "wait_mean": tenths(sum(waits) / len(waits)) if waits else None,
        "wait_p90": tenths(percentile_cont(waits, Decimal("0.9"))) if waits else None,
        "wait_longest": float(max(waits)) if waits else None,
        "hot_topics": hot,
    }


def measured(report: dict) -> dict:
    c = report["calls"]
    return {**{k: c[k] for k in ("calls", "offered", "answered", "abandoned", "answered_within", "self_served",
                                  "escalated", "answer_rate", "abandon_rate", "service_level",
                                  "self_service_rate", "escalation_rate")},
            "wait_mean": c["wait"]["mean"], "wait_p90": c["wait"]["p90"], "wait_longest": c["wait"]["longest"],
            "hot_topics": [(t["item"], t["calls"]) for t in report["hot_topics"]]}


def difference(want, got):
    if isinstance(want, list):
        return 0 if want == got else "differs"
    if want is None or got is None:
        return 0 if want == got else "differs"
    return round(got - want, 4)


async def drive(url: str, calls: list[Call], tz: ZoneInfo) -> dict:
    settings = load_settings(env={}).with_overrides(
        ami={"secret": "s3cret-for-the-bench-only"}, asr={"model_path": ""},
        recordings={"local_dir": "/nonexistent-bench", "settle_seconds": 0.0, "missing_retries": 1},
        database={"url": url})
    queues = {d.code: d.queue for d in settings.departments}
    templates = Templates()
    stream = sorted((at, c.number, i, block) for c in calls
                    for i, (at, block) in enumerate(templates.events(c, queues)))
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    await seed_from_files(pool)
    timings = {}
    async with AmiStandIn([]) as server:
        app = create_app(settings.with_overrides(ami={"port": server.port}), pool=pool)
        async with running(app) as core:
            await core.ami.wait_logged_in(5)
            started = time.perf_counter()
            chunk = 400
            for i in range(0, len(stream), chunk):
                await server.inject(b"".join(stamp(block, at) for at, _, _, block in stream[i:i + chunk]))
                await asyncio.sleep(0)
            await core.ami.request({"Action": "Ping"}, timeout=600)
            await core.writer.flush(timeout=600)
            await core.settle()
            timings["drive"] = time.perf_counter() - started
            timings["events"] = len(stream)
            # What the spoken menu writes when it plays an answer or routes on what it heard.
            rows = [(c.linkedid, c.start + timedelta(seconds=10), "voice.heard",
                     json.dumps({"transcripts": ["我想问一下"], "item": c.item, "department": c.department,
                                 "reaction": "played_answer" if c.kind == "self_served" else "routed",
                                 "confidence": 0.9}, ensure_ascii=False), f"{c.linkedid}:voice.heard")
                    for c in calls if c.item]
            async with pool.acquire() as conn:
                await conn.executemany("""INSERT INTO call_events (linkedid, uniqueid, occurred_at, kind, detail,
                                                                   dedupe_key)
                                          VALUES ($1, $1, $2, $3, $4::jsonb, $5)""", rows)
            service = app[TICKETS]     # the tickets feature's service in the running app
            for c in calls:
                if c.ticket:
                    await service.open_from_disposition(c.linkedid, DISPOSITION_UNRESOLVED, "token:3:坐席8006",
                                                        department=c.department)
            await asyncio.sleep(0.5)
            timings["total"] = time.perf_counter() - started
    timings["pool"] = pool
    return timings


async def bench(url: str, n: int, seed: int) -> None:
    settings = load_settings(env={})
    tz = ZoneInfo(settings.tickets.timezone)
    day = datetime.now(tz).date() - timedelta(days=1)
    calls = scenario(day, n, seed, tz)
    print(f"scenario: {n} calls on {day} ({dict(Counter(c.kind for c in calls))}), "
          f"{sum(c.ticket for c in calls)} marked 未解决 by agents")
    timings = await drive(url, calls, tz)
    pool = timings.pop("pool")
    print(f"driven through the stand-in over AMI: {timings['events']} events in {timings['drive']:.1f} s "
          f"({timings['events'] / timings['drive']:.0f} events/s; the day compressed {86_400 / timings['drive']:.0f}x), "
          f"all in PostgreSQL, tickets opened, after {timings['total']:.1f} s")
    names = {d.code: d.name for d in settings.departments}
    failures = 0
    try:
        for department in (None, "tax"):
            async with pool.acquire() as conn:
                started = time.perf_counter()
                report = await build_report(conn, settings,
                                            period_of(day.isoformat(), day.isoformat(), department, tz, names, day))
                took = time.perf_counter() - started
            want = expected(calls, department, settings.reports.service_level_seconds,
                            settings.tickets.abandoned_callback_seconds)
            got = measured(report)
            print(f"\nreport for {day}, {department or 'all departments'} (built in {took * 1000:.0f} ms)")
            print(f"{'figure':<20}{'from the scenario':>20}{'the report':>20}{'difference':>12}")
            for key, value in want.items():
                diff = difference(value, got[key])
                failures += diff != 0
                if key == "hot_topics":
                    print(f"{key:<20}{len(value):>20}{len(got[key]):>20}{diff!s:>12}")
                    for (item, count), mine in zip(value, got[key]):
                        print(f"  {item:<30}{count:>8}{mine[1]:>20}")
                else:
                    print(f"{key:<20}{value!s:>20}{got[key]!s:>20}{diff!s:>12}")
    finally:
        await pool.close()
    print(f"\nfigures that differ: {failures}")
    if failures:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    configure_logging(level=logging.CRITICAL)   # no recordings here: an error line per call
    started = time.perf_counter()
    with postgres_server() as (admin, _cluster):
        url = asyncio.run(create_migrated_database(admin, "hotline_bench_report_day"))
        asyncio.run(bench(url, args.calls, args.seed))
    print(f"run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

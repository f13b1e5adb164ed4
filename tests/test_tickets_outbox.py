"""The 12345 outbox against a real HTTP server on the loopback that fails,
times out, answers twice and rejects: each case reaches the platform once (one
idempotency key, the same body every time), nothing is sent again after an
answer, and nothing is lost when a worker is killed mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest
from aiohttp import web

from hotline.hub import EventHub
from tickets.calendar import calendar_from
from tickets.model import TicketSource, TicketState
from tickets.outbox import DispatchWorker
from tickets.service import NewTicket, TicketService
from tests.bridge_harness import eventually

S = TicketState
AGENT = "token:3:坐席8006"
SUPERVISOR = "token:1:班长"


class Platform:
    """The 12345 platform's intake, scripted per request: ``fail`` (503), ``slow``
    (takes the case, answers after the client gave up), ``junk`` (200 without an
    answer), ``refuse`` (400), ``reject``, ``answer``, else ``ok`` (accepted).
    A case is made once per idempotency key, whatever the request's fate."""

    def __init__(self, *script: str, delay: float = 0.0):
        self.script = list(script)
        self.delay = delay
        self.requests: list[tuple[str, dict]] = []
        self.cases: dict[str, str] = {}

    async def intake(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        body = await request.json()
        self.requests.append((key, body))
        step = self.script.pop(0) if self.script else "ok"
        if step == "fail":
            return web.json_response({"error": "系统维护中"}, status=503)
        if step == "refuse":
            return web.json_response({"error": "缺少必填字段"}, status=400)
        if step == "junk":
            return web.Response(text="<html>502 from a proxy</html>", content_type="text/html")
        case = self.cases.setdefault(key, f"12345-{len(self.cases) + 1:06d}")
        if step == "slow":
            await asyncio.sleep(1.0)
        elif self.delay:
            await asyncio.sleep(self.delay)
        if step == "reject":
            return web.json_response({"status": "rejected", "case_id": case, "reason": "不属于12345受理范围"})
        if step == "answer":
            return web.json_response({"status": "answered", "case_id": case, "result": "已由区城管局处理完毕"})
        repeated = sum(1 for k, _ in self.requests if k == key) > 1
        return web.json_response({"status": "accepted", "case_id": case, "repeated": repeated})


@asynccontextmanager
async def serving(platform: Platform) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/cases", platform.intake)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/cases"
    finally:
        await runner.cleanup()


def fast(settings, url: str):
    return settings.with_overrides(tickets={"dispatch_url": url, "dispatch_timeout": 0.3,
                                            "dispatch_retry_min": 0.05, "dispatch_retry_max": 0.2,
                                            "timer_poll": 0.1})


def service_for(settings, db) -> TicketService:
    return TicketService(settings, lambda: db, EventHub(), calendar_from(settings.tickets.calendar))


async def dispatched(service: TicketService, subject: str = "占道经营，多次投诉未果") -> dict:
    ticket = (await service.open(NewTicket(TicketSource.MANUAL, subject, caller_number="13800138000",
                                           department="complaint"), AGENT)).ticket
    await service.transition(ticket["id"], S.IN_PROGRESS, AGENT, "已核实")
    return await service.dispatch(ticket["id"], SUPERVISOR, "涉及多个部门，派发12345")


async def dispatch_rows(db, ticket_id: int | None = None) -> list[dict]:
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM ticket_dispatches WHERE $1::bigint IS NULL OR ticket_id = $1 "
                                "ORDER BY id", ticket_id)
    return [dict(r) for r in rows]


async def kinds(db, ticket_id: int) -> list[str]:
    async with db.acquire() as conn:
        return [r["kind"] for r in await conn.fetch(
            "SELECT kind FROM ticket_events WHERE ticket_id = $1 ORDER BY at, id", ticket_id)]


async def test_a_failing_then_silent_platform_gets_the_case_once_and_its_answers_act_once(settings, db):
    platform = Platform("fail", "slow", "ok")
    async with serving(platform) as url:
        settings = fast(settings, url)
        service = service_for(settings, db)
        worker = DispatchWorker(service, settings.tickets, "p1", lease_margin=0.2)
        service.on_dispatch.append(worker.poke)
        worker.start()
        try:
            ticket = await dispatched(service)
            assert ticket["state"] == "dispatched_12345" and ticket["dispatched_at"] is not None

            async def accepted():
                rows = await dispatch_rows(db, ticket["id"])
                return rows if rows[0]["status"] == "accepted" else None
            row = (await eventually(accepted, 10, "the platform to accept the case"))[0]
            await asyncio.sleep(0.5)                 # long enough for any further (wrong) attempt
        finally:
            await worker.close()
    # Three POSTs (503, timed out, accepted), one key, one body, one case on the platform.
    assert len(platform.requests) == 3
    assert {key for key, _ in platform.requests} == {row["idempotency_key"]}
    assert all(body == platform.requests[0][1] for _, body in platform.requests)
    assert platform.cases == {row["idempotency_key"]: "12345-000001"}
    body = platform.requests[0][1]
    assert body["ticket_number"] == ticket["number"] and body["department_name"] == "投诉建议"
    assert body["idempotency_key"] == row["idempotency_key"] and body["caller_number"] == "13800138000"
    assert row["attempts"] == 3 and row["external_id"] == "12345-000001" and "Timeout" in row["last_error"]
    assert (await kinds(db, ticket["id"])).count("dispatch.accepted") == 1

    # The platform sends its result twice: the ticket is answered once.
    answer = {"idempotency_key": row["idempotency_key"], "status": "answered", "result": "已协调城管处理"}
    first = await service.apply_dispatch_answer(answer)
    second = await service.apply_dispatch_answer({**answer, "result": "再次推送"})
    assert first is not None and not first["duplicate"] and second is not None and second["duplicate"]
    history = await kinds(db, ticket["id"])
    assert history.count("dispatch.answered") == 1
    async with db.acquire() as conn:
        state, answered = await conn.fetchrow("SELECT state, answered_at FROM tickets WHERE id = $1", ticket["id"])
        moves = await conn.fetch("SELECT to_state, actor, reason FROM ticket_events WHERE ticket_id = $1 "
                                 "AND kind = 'transition' ORDER BY id", ticket["id"])
    assert state == "answered" and answered is not None
    assert [(m["to_state"], m["actor"]) for m in moves][-1] == ("answered", "system:12345")
    assert moves[-1]["reason"] == "12345答复：已协调城管处理"


async def test_rejections_refusals_and_unreadable_answers(settings, db):
    platform = Platform("reject", "refuse", "junk", "answer")
    async with serving(platform) as url:
        settings = fast(settings, url)
        service = service_for(settings, db)
        worker = DispatchWorker(service, settings.tickets, "p1", lease_margin=0.2)
        rejected = await dispatched(service)
        refused = await dispatched(service)
        answered = await dispatched(service)
        worker.start()
        try:
            async def settled():
                rows = await dispatch_rows(db)
                return rows if all(r["status"] != "pending" for r in rows) else None
            rows = await eventually(settled, 10, "every dispatch to be settled")
        finally:
            await worker.close()
    assert [r["status"] for r in rows] == ["rejected", "failed", "answered"]
    assert [r["attempts"] for r in rows] == [1, 1, 2]              # the 200 without an answer was retried
    async with db.acquire() as conn:
        states = [await conn.fetchval("SELECT state FROM tickets WHERE id = $1", t["id"])
                  for t in (rejected, refused, answered)]
        reasons = [await conn.fetchval("SELECT reason FROM ticket_events WHERE ticket_id = $1 AND "
                                       "kind = 'transition' ORDER BY id DESC LIMIT 1", t["id"])
                   for t in (rejected, refused, answered)]
    assert states == ["in_progress", "in_progress", "answered"]
    assert reasons[0] == "12345退回：不属于12345受理范围"
    assert reasons[1].startswith("12345平台拒收：HTTP 400") and reasons[2] == "12345答复：已由区城管局处理完毕"
    assert "dispatch.failed" in await kinds(db, refused["id"])
    # Handed back: our answer clock runs again for the rejected one.
    async with db.acquire() as conn:
        armed = await conn.fetchval("SELECT count(*) FROM ticket_timers WHERE ticket_id = $1 AND deadline = 'answer' "
                                    "AND fired_at IS NULL AND cancelled_at IS NULL", rejected["id"])
    assert armed >= 1


async def test_nothing_is_lost_or_taken_twice_when_the_worker_is_killed_mid_run(settings, db, database_url):
    platform = Platform(delay=0.05)
    async with serving(platform) as url:
        settings = fast(settings, url)
        service = service_for(settings, db)
        tickets = [await dispatched(service, f"派发测试{n}") for n in range(30)]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.tickets_outbox_worker", database_url, url,
            stdout=asyncio.subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(__file__)))
        try:
            assert process.stdout is not None
            assert (await asyncio.wait_for(process.stdout.readline(), 20)).strip() == b"ready"
            await eventually(lambda: asyncio.sleep(0, len(platform.requests) >= 8), 20, "the worker to send")
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        sent_before_kill = len(platform.requests)
        assert sent_before_kill < 30, "killed mid-run"
        worker = DispatchWorker(service, settings.tickets, "second-worker", lease_margin=0.2)
        worker.start()
        try:
            async def all_accepted():
                rows = await dispatch_rows(db)
                return rows if all(r["status"] == "accepted" for r in rows) else None
            rows = await eventually(all_accepted, 20, "every dispatch accepted")
        finally:
            await worker.close()
    keys = [r["idempotency_key"] for r in rows]
    assert len(rows) == 30 and sorted(platform.cases) == sorted(keys)        # nothing lost, one case each
    per_key = {key: sum(1 for k, _ in platform.requests if k == key) for key in keys}
    # At most the POST in flight at the kill went twice, with its key: the same case.
    assert sum(n - 1 for n in per_key.values()) <= 1, per_key
    assert {r["leased_by"] for r in rows} <= {"killed-worker", "second-worker", None}
    for ticket in tickets:
        assert (await kinds(db, ticket["id"])).count("dispatch.accepted") == 1

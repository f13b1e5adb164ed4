"""The 12345 outbox: throughput to a local receiver, then a kill -9 of the
worker's process mid-run and a restart.

N tickets are dispatched (``TicketService.dispatch``: the move and the outbox
row in one transaction), then a worker in a process of its own
(``python -m bench.outbox --worker``: the real ``DispatchWorker`` with the
service's settings, its lease shortened by ``--lease-margin``) POSTs them to an
aiohttp receiver in this process, which records every request's
``Idempotency-Key`` and makes a case once per key (a repeated key gets the same
case back, as the platform is expected to do).

Run 1 prints cases/s. Run 2 dispatches N more, SIGKILLs the worker's process
when about a third has been received, starts a new one and waits for every
dispatch to be accepted; it prints, separately:

* lost: dispatches never received / never accepted;
* keys received more than once (the POST in flight at the kill, sent again with
  its key: harmless on an idempotent receiver);
* duplicated effects: a ticket that got two cases on the receiver (two keys for
  one ticket), or whose ``dispatch.accepted`` was recorded twice on our side.

    .venv/bin/python -m bench.outbox [--tickets 2000] [--lease-margin 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections import Counter

import asyncpg
from aiohttp import web

from hotline.hub import EventHub
from hotline.logs import configure_logging
from hotline.settings import load_settings
from tests.pg import create_migrated_database, postgres_server
from tickets.calendar import calendar_from
from tickets.model import TicketSource, TicketState
from tickets.outbox import DispatchWorker
from tickets.service import NewTicket, TicketService

AGENT = "token:3:坐席8006"
SUPERVISOR = "token:1:班长"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Receiver:
    """The platform's intake: every request recorded, one case per key."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []       # (key, ticket number)
        self.cases: dict[str, str] = {}                  # key -> case id

    async def intake(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        body = await request.json()
        self.requests.append((key, body["ticket_number"]))
        case = self.cases.setdefault(key, f"12345-{len(self.cases) + 1:06d}")
        return web.json_response({"status": "accepted", "case_id": case})


def settings_for(url: str):
    return load_settings(env={}).with_overrides(tickets={"dispatch_url": url})


def service_for(settings, pool) -> TicketService:
    return TicketService(settings, lambda: pool, EventHub(), calendar_from(settings.tickets.calendar))


async def dispatch_many(service: TicketService, n: int, label: str) -> None:
    async def one(i: int) -> None:
        ticket = (await service.open(NewTicket(TicketSource.MANUAL, f"{label} 派发测试 {i}",
                                               caller_number="13800138000", department="complaint"),
                                     AGENT)).ticket
        await service.transition(ticket["id"], TicketState.IN_PROGRESS, AGENT, "已核实")
        await service.dispatch(ticket["id"], SUPERVISOR, "涉及多个部门，派发12345")
    for start in range(0, n, 8):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 8))))


async def start_worker(database_url: str, endpoint: str, name: str, lease_margin: float):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.outbox", "--worker", database_url, endpoint, name, str(lease_margin),
        stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line.strip() == b"ready", line
    return process


async def pending(pool: asyncpg.Pool, since_id: int) -> int:
    return await pool.fetchval("SELECT count(*) FROM ticket_dispatches WHERE id > $1 AND status <> 'accepted'",
                               since_id)


async def wait_settled(pool: asyncpg.Pool, since_id: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await pending(pool, since_id):
        if time.monotonic() > deadline:
            raise SystemExit(f"not settled after {timeout} s: {await pending(pool, since_id)} pending")
        await asyncio.sleep(0.05)


async def bench(database_url: str, n: int, lease_margin: float) -> None:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/cases", receiver.intake)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    endpoint = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/cases"   # type: ignore[union-attr]
    settings = settings_for(endpoint)
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=10)
    service = service_for(settings, pool)
    try:
        # Run 1: throughput.
        started = time.perf_counter()
        await dispatch_many(service, n, "run1")
        print(f"run 1: {n} tickets dispatched (open, verify, dispatch) in {time.perf_counter() - started:.1f} s")
        worker = await start_worker(database_url, endpoint, "bench-worker", lease_margin)
        started = time.perf_counter()
        await wait_settled(pool, 0, 600)
        took = time.perf_counter() - started
        worker.send_signal(signal.SIGTERM)
        await worker.wait()
        print(f"run 1: {n} cases POSTed and accepted in {took:.2f} s: {n / took:.0f} cases/s "
              f"(one worker process, batches of 20, POSTs one at a time)")

        # Run 2: kill -9 mid-run, restart.
        first_id = await pool.fetchval("SELECT coalesce(max(id), 0) FROM ticket_dispatches")
        receiver.requests.clear()
        await dispatch_many(service, n, "run2")
        started = time.perf_counter()
        worker = await start_worker(database_url, endpoint, "bench-worker", lease_margin)
        while len(receiver.requests) < n // 3:
            await asyncio.sleep(0.005)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        at_kill = len(receiver.requests)
        leased = await pool.fetchval("SELECT count(*) FROM ticket_dispatches WHERE id > $1 AND status = 'pending' "
                                     "AND leased_until > now()", first_id)
        print(f"run 2: worker killed (SIGKILL, rc {worker.returncode}) after {at_kill} of {n} POSTs, "
              f"{leased} rows left leased by it")
        killed_at = time.perf_counter()
        worker = await start_worker(database_url, endpoint, "bench-worker-restarted", lease_margin)
        await wait_settled(pool, first_id, 600)
        finished = time.perf_counter()
        worker.send_signal(signal.SIGTERM)
        await worker.wait()
        await asyncio.sleep(0.3)      # a (wrong) late POST would show up
        rows = await pool.fetch("SELECT d.idempotency_key, d.status, t.number, d.attempts FROM ticket_dispatches d "
                                "JOIN tickets t ON t.id = d.ticket_id WHERE d.id > $1", first_id)
        accepted_events = await pool.fetch(
            """SELECT e.ticket_id, count(*) AS n FROM ticket_events e JOIN ticket_dispatches d
                   ON d.ticket_id = e.ticket_id AND d.id > $1
               WHERE e.kind = 'dispatch.accepted' GROUP BY e.ticket_id""", first_id)
        keys = {r["idempotency_key"] for r in rows}
        per_key = Counter(k for k, _ in receiver.requests)
        keys_per_ticket = Counter()
        for key, number in set(receiver.requests):
            keys_per_ticket[number] += 1
        lost_never_received = len(keys - set(per_key))
        lost_not_accepted = sum(1 for r in rows if r["status"] != "accepted")
        repeated_keys = sum(1 for k in keys if per_key[k] > 1)
        repeated_posts = sum(per_key[k] - 1 for k in keys if per_key[k] > 1)
        two_cases = sum(1 for v in keys_per_ticket.values() if v > 1)
        accepted_twice = sum(1 for r in accepted_events if r["n"] > 1)
        unaccounted = sum(1 for r in accepted_events if r["n"] < 1) + (n - len(accepted_events))
        print(f"run 2: {len(rows)} dispatches, {len(receiver.requests)} POSTs received; all accepted "
              f"{finished - started:.2f} s after the start, {finished - killed_at:.2f} s after the kill "
              f"(lease: dispatch_timeout {settings.tickets.dispatch_timeout:g} s + margin {lease_margin:g} s)")
        print(f"lost = {lost_never_received + lost_not_accepted + unaccounted} "
              f"(never received {lost_never_received}, not accepted {lost_not_accepted}, "
              f"tickets without dispatch.accepted {unaccounted})")
        print(f"keys received more than once = {repeated_keys} ({repeated_posts} repeated POSTs, same key: "
              f"the receiver returned the same case)")
        print(f"duplicated effects = {two_cases + accepted_twice} (tickets with two cases on the receiver "
              f"{two_cases}, tickets with dispatch.accepted twice {accepted_twice}); "
              f"cases on the receiver {len(set(receiver.cases) & keys)} for {n} tickets")
    finally:
        await pool.close()
        await runner.cleanup()


async def worker_main(database_url: str, endpoint: str, name: str, lease_margin: float) -> None:
    """The outbox worker alone in this process, until a signal ends it."""
    configure_logging(level=logging.WARNING)      # a log line per case would cost more than the POST
    settings = settings_for(endpoint)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    worker = DispatchWorker(service_for(settings, pool), settings.tickets, name, lease_margin=lease_margin)
    worker.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await worker.close()
    await pool.close()


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        url, endpoint, name, margin = sys.argv[2:6]
        asyncio.run(worker_main(url, endpoint, name, float(margin)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--lease-margin", type=float, default=1.0,
                        help="seconds a lease outlives dispatch_timeout (the service uses 30)")
    args = parser.parse_args()
    configure_logging(level=logging.ERROR)   # every dispatch here passes the 10% goal: a warning each
    with postgres_server() as (admin, _cluster):
        url = asyncio.run(create_migrated_database(admin, "hotline_bench_outbox"))
        asyncio.run(bench(url, args.tickets, args.lease_margin))


if __name__ == "__main__":
    main()

"""The tickets' timers at scale: 50,000 open tickets with their timers (200,000
rows), then 1,000 deadlines passing at one moment with the worker running.

Prints what an idle round of the timer worker costs (the claim query and the
next-due lookup, every ``timer_poll``: its share of a core, this process's CPU
plus PostgreSQL's execution time) and how late the due timers fired.

    .venv/bin/python -m bench.tickets_timers [--tickets 50000] [--due 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from hotline.hub import EventHub
from hotline.settings import load_settings
from tests.pg import create_migrated_database, postgres_server
from tickets.calendar import calendar_from
from tickets.service import TicketService
from tickets.timers import TimerWorker

FILL = """
WITH t AS (
    INSERT INTO tickets (source, subject, opened_by, opened_at, verify_due, answer_due)
    SELECT 'manual', 'bench ' || n, 'bench', now(), now() + interval '2 hours', now() + interval '24 hours'
    FROM generate_series(1, $1) AS n
    RETURNING id, verify_due, answer_due)
INSERT INTO ticket_timers (ticket_id, deadline, action, due_at, deadline_at)
SELECT id, d, a, CASE a WHEN 'remind' THEN due - interval '30 minutes' ELSE due END, due
FROM t, LATERAL (VALUES ('verify', verify_due), ('answer', answer_due)) AS dl(d, due),
     LATERAL (VALUES ('remind'), ('escalate')) AS ac(a)
"""


async def bench(url: str, tickets: int, due: int, rounds: int) -> None:
    settings = load_settings(env={})
    pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
    try:
        async with pool.acquire() as conn:
            started = time.perf_counter()
            await conn.execute(FILL, tickets)
            await conn.execute("ANALYZE ticket_timers; ANALYZE tickets")
            print(f"{tickets} tickets, {tickets * 4} timers made in {time.perf_counter() - started:.1f} s")
        service = TicketService(settings, lambda: pool, EventHub(), calendar_from(settings.tickets.calendar))
        worker = TimerWorker(service, settings.tickets.timer_poll, "bench")
        # Idle rounds: nothing due.
        walls, cpus = [], []
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            await worker.run_once()
            await worker.seconds_to_next()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        async with pool.acquire() as conn:
            plan = await conn.fetchval(
                """EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM ticket_timers
                   WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= now()
                   ORDER BY due_at, id LIMIT 500 FOR UPDATE SKIP LOCKED""")
        import json
        execution = json.loads(plan)[0]["Execution Time"] / 1000
        poll = settings.tickets.timer_poll
        median_wall = statistics.median(walls)
        print(f"idle round: median {median_wall * 1000:.2f} ms wall, {statistics.median(cpus) * 1000:.2f} ms "
              f"CPU here, claim query {execution * 1000:.3f} ms in PostgreSQL; every {poll} s: "
              f"{median_wall / poll:.2%} of one core at most (wall time, both sides)")
        # Deadlines passing: `due` escalations at one moment two seconds from now.
        async with pool.acquire() as conn:
            moment = await conn.fetchval(
                """WITH d AS (SELECT id FROM ticket_timers WHERE action = 'escalate' AND deadline = 'verify'
                              ORDER BY id LIMIT $1)
                   UPDATE ticket_timers SET due_at = now() + interval '2 seconds', deadline_at = now() + interval '2 seconds'
                   FROM d WHERE ticket_timers.id = d.id RETURNING ticket_timers.due_at""", due)
        worker.start()
        try:
            while True:
                async with pool.acquire() as conn:
                    fired = await conn.fetchval("SELECT count(*) FROM ticket_timers WHERE fired_at IS NOT NULL")
                if fired >= due:
                    break
                await asyncio.sleep(0.1)
        finally:
            await worker.close()
        async with pool.acquire() as conn:
            late = await conn.fetch("SELECT extract(epoch FROM fired_at - due_at) AS late FROM ticket_timers "
                                    "WHERE fired_at IS NOT NULL")
        lateness = sorted(r["late"] for r in late)
        print(f"{len(lateness)} deadlines passing at {moment:%H:%M:%S}: fired {float(lateness[0]):.3f} s to "
              f"{float(lateness[-1]):.3f} s after (median {float(statistics.median(lateness)):.3f} s)")
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with postgres_server() as (admin, _cluster):
        url = asyncio.run(create_migrated_database(admin, "hotline_bench_tickets"))
        asyncio.run(bench(url, args.tickets, args.due, args.rounds))


if __name__ == "__main__":
    main()

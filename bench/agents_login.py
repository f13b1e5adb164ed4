"""Queue actions for a whole shift: every agent logs in at once, then out.

The 28 extensions of ``config/hotline.toml`` log in at the same moment through
the real desk (``AgentDesk.login``: QueueAdd to the own department's queue,
penalty 0, and to ``general_queue``, penalty 1), over a real TCP socket to the
Asterisk stand-in, whose app_queue emulation answers each QueueAdd and sends
its QueueMemberAdded as Asterisk 22 does (templates from the captures). Prints,
per round, the QueueAdds sent, the time until every one was answered, the time
until every agent's console state showed all its queues (the events applied),
and the same for logging everyone out. The stand-in is Python, so the figures
include its own work; Asterisk answers a QueueAdd in well under a millisecond.

    .venv/bin/python -m bench.agents_login --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from agents.board import AgentStatus
from agents.seat import AgentSeat
from agents.setup import AGENT_DESK
from hotline.app import create_app
from hotline.logs import configure_logging
from hotline.settings import load_settings
from tests.bridge_harness import running
from tests.pg import create_migrated_database, postgres_server
from tests.standin import AmiStandIn, Emulator

BENCH_DB = "hotline_bench_agents"


def seats(settings) -> list[AgentSeat]:
    general = settings.fallback_queue
    found = []
    for dept in settings.departments:
        queues = ((dept.queue, 0),) if dept.queue == general else ((dept.queue, 0), (general, 1))
        found += [AgentSeat(int(ext), f"坐席{ext}", ext, queues) for ext in dept.extensions]
    return found


async def until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the consoles never agreed")
        await asyncio.sleep(0.001)


async def run(url: str, rounds: int) -> dict:
    base = load_settings(env={})
    queues = tuple(dict.fromkeys(d.queue for d in base.departments))
    figures: dict[str, list[float]] = {"login_answered_ms": [], "login_shown_ms": [],
                                       "logout_answered_ms": [], "logout_shown_ms": []}
    async with AmiStandIn([], emulator=Emulator(members=[], queues=queues)) as server:
        settings = base.with_overrides(ami={"host": "127.0.0.1", "port": server.port, "secret": "bench-secret"},
                                       database={"url": url})
        app = create_app(settings)
        async with running(app) as core:
            await core.ami.wait_logged_in(timeout=10)
            desk = app[AGENT_DESK]
            everyone = seats(settings)
            actions = sum(len(s.queues) for s in everyone)
            for _ in range(rounds):
                for operation, done in (("login", lambda s: len(desk.state(s).queues) == len(s.queues)),
                                        ("logout", lambda s: desk.state(s).status is AgentStatus.OFFLINE)):
                    started = time.perf_counter()
                    reports = await asyncio.gather(*(getattr(desk, operation)(s) for s in everyone))
                    answered = time.perf_counter()
                    await until(lambda: all(done(s) for s in everyone))
                    shown = time.perf_counter()
                    assert all(r.ok for r in reports), [r.as_json() for r in reports if not r.ok]
                    figures[f"{operation}_answered_ms"].append((answered - started) * 1000)
                    figures[f"{operation}_shown_ms"].append((shown - started) * 1000)
            await core.settle()
    result: dict = {"agents": len(everyone), "queue_adds_per_round": actions, "rounds": rounds}
    for name, values in figures.items():
        result[f"{name}_median"] = round(statistics.median(values), 1)
        result[f"{name}_max"] = round(max(values), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging("console", level=50)
    with postgres_server() as (url, _cluster):
        result = asyncio.run(run(asyncio.run(create_migrated_database(url, BENCH_DB)), args.rounds))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()

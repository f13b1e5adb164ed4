"""Screen-pop latency: from the ``AgentCalled`` bytes on the AMI socket to the
agent's console WebSocket.

28 agents (the extensions 8001–8028 of ``config/hotline.toml``, one account
each, made as the CLI makes them) log in through the real login form, open
``/ws/console`` with their session (aiohttp clients) and log in to their queues
(``POST /api/console/queues/login``: QueueAdd to the Asterisk stand-in's
app_queue emulation). Calls then arrive at ``--calls-per-minute`` (60), each
offered to the next free agent in turn: the events of capture 2 (a call queued
and answered, ``tests/fixtures/asterisk/call-menu-queue-answered.ami``, without
the menu's AsyncAGI events, as ``bench.ami_throughput`` sends them) with the
call's ids, the agent's phone and name, the agent's own department queue and
one of 50 caller numbers put in (2000 older calls are seeded, so each caller
has history). ``AgentCalled`` is written on its own, 2 ms after
``QueueCallerJoin`` as in the capture; the agent answers ``--ring`` seconds
later, hangs up ``--talk`` seconds after that, and marks the wrap-up done
(``POST /api/console/wrapup/done``) ``--wrapup`` seconds later.

Measured per call, from just before the ``AgentCalled`` bytes are written into
the stand-in's AMI socket to the moment the agent's client has read the message:
the ``state`` message (ringing) and the ``screen_pop`` (phase ringing; made from
PostgreSQL: the menu's rows, the knowledge items, the caller's last 90 days).
The stand-in, the service and the 28 clients share one process and one event
loop (the clients' own work counts against the figures), on a real PostgreSQL.

    .venv/bin/python -m bench.screen_pop                       # 28 agents, 60 calls/min, 5 minutes
    .venv/bin/python -m bench.screen_pop --quick               # 1 minute
    .venv/bin/python -m bench.screen_pop --seconds 120 --calls-per-minute 120
    .venv/bin/python -m bench.screen_pop --quick --breakdown

``--breakdown`` times, inside the service, the steps of making a pop (the wait
for the call writer's commit, each PostgreSQL read) by wrapping them with a
timer (measurement only: they run unchanged), the writer's transactions, and how late the event loop
wakes a 5 ms sleep (how busy the process and the machine are).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import aiohttp
import asyncpg

from agents.console import store as console_store
from bench.ami_throughput import SEED_CALLS, SimulatedCalls, call_template, reset, stamp
from hotline.logs import configure_logging
from knowledge import store as knowledge
from hotline.settings import load_settings
from tests.console_harness import console_on, person, post
from tests.pg import create_migrated_database, postgres_server
from tests.standin import Emulator
from tests.web_harness import fast, make_account

BENCH_DB = "hotline_bench_screen_pop"
CALLERS = 50
CAPTURED = {"PJSIP/8006": "interface", "坐席8006": "name", "social_security": "queue", "13800138000": "caller"}


@dataclass
class Agent:
    extension: str
    name: str
    queue: str
    client: aiohttp.ClientSession | None = None
    csrf: str = ""
    socket: aiohttp.ClientWebSocketResponse | None = None
    busy: bool = False
    seen: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class Figures:
    written: dict[str, float] = field(default_factory=dict)       # uniqueid -> perf_counter
    state_ms: list[float] = field(default_factory=list)
    pop_ms: list[float] = field(default_factory=list)
    pop_problems: int = 0
    pop_knowledge: list[int] = field(default_factory=list)
    pop_history: list[int] = field(default_factory=list)
    skipped: int = 0


def agents_of(settings) -> list[Agent]:
    return [Agent(ext, f"坐席{ext}", dept.queue) for dept in settings.departments for ext in dept.extensions]


def call_events(simulated: SimulatedCalls, number: int, agent: Agent) -> list[str]:
    values = {"interface": f"PJSIP/{agent.extension}", "name": agent.name, "queue": agent.queue,
              "caller": f"1380000{number % CALLERS + 1}"}      # the seeded callers' numbers
    events = []
    for event in simulated.events(number):
        for captured, what in CAPTURED.items():
            event = event.replace(captured, values[what])
        events.append(event)
    return events


def kind(event: str) -> str:
    return event.split("\r\n", 1)[0][len("Event: "):]


def index_of(events: list[str], name: str, start: int = 0) -> int:
    return next(i for i in range(start, len(events)) if kind(events[i]) == name)


async def listen(agent: Agent, figures: Figures) -> None:
    """The agent's console: the first ringing state and ringing pop of each call timed."""
    assert agent.socket is not None
    async for frame in agent.socket:
        if frame.type is not aiohttp.WSMsgType.TEXT:
            continue
        got = time.perf_counter()
        message = json.loads(frame.data)
        if message["type"] == "state" and message["agent"]["state"] == "ringing":
            uniqueid, into = message["agent"]["call"]["uniqueid"], figures.state_ms
        elif message["type"] == "screen_pop" and message["phase"] == "ringing":
            uniqueid, into = message["uniqueid"], figures.pop_ms
            figures.pop_problems += bool(message.get("problems"))
            figures.pop_knowledge.append(len(message.get("knowledge") or ()))
            figures.pop_history.append(len(message.get("history") or ()))
        else:
            continue
        seen = agent.seen.setdefault(message["type"], set())
        if uniqueid in figures.written and uniqueid not in seen:
            seen.add(uniqueid)
            into.append((got - figures.written[uniqueid]) * 1000)


async def one_call(rig, agent: Agent, events: list[str], figures: Figures, ring: float, talk: float,
                   wrapup: float) -> None:
    async def send(chunk: list[str]) -> None:
        now = time.time()
        await rig.ami.inject(b"".join(stamp(e, now) for e in chunk), conn_index=0)

    joined = index_of(events, "QueueCallerJoin")
    called = index_of(events, "AgentCalled", joined)
    answered = index_of(events, "Newstate", called)
    hung_up = index_of(events, "HangupRequest", answered)
    uniqueid = next(line.split(": ", 1)[1] for line in events[called].split("\r\n") if line.startswith("Uniqueid: "))
    agent.busy = True
    try:
        await send(events[:joined])
        await asyncio.sleep(0.5)                  # the menu
        await send(events[joined:called])
        await asyncio.sleep(0.002)
        figures.written[uniqueid] = time.perf_counter()
        await send(events[called:called + 1])
        await send(events[called + 1:answered])   # DialBegin, NewConnectedLine
        await asyncio.sleep(ring)
        await send(events[answered:hung_up])
        await asyncio.sleep(talk)
        await send(events[hung_up:])
        await asyncio.sleep(wrapup)
        status, body = await post(agent.client, agent.csrf, "/api/console/wrapup/done")
        assert status == 200, body
    finally:
        agent.busy = False


class Breakdown:
    """Durations (ms) of the pop's steps, by name; the event loop's lateness."""

    STEPS = ("menu_rows", "knowledge_question", "knowledge_for", "previous_calls")

    def __init__(self):
        self.ms: dict[str, list[float]] = {}
        self._undo: list[tuple[object, str, object]] = []

    def _wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        async def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self.ms.setdefault(label, []).append((time.perf_counter() - started) * 1000)

        self._undo.append((owner, name, original))
        setattr(owner, name, timed)

    def install(self, core) -> None:
        self._wrap(core.writer, "flush", "writer_flush")
        self._wrap(core.writer, "_write", "writer_transaction")
        for step in self.STEPS:
            self._wrap(console_store, step, step)

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._undo):
            if owner is console_store:
                setattr(owner, name, original)
            else:
                delattr(owner, name)       # the instance attribute hid the method

    async def loop_lateness(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            self.ms.setdefault("event_loop_late", []).append((time.perf_counter() - started) * 1000 - 5)

    def figures(self) -> dict:
        found = {}
        for label, values in self.ms.items():
            found[f"{label}_p50_ms"] = percentile(values, 0.50)
            found[f"{label}_p95_ms"] = percentile(values, 0.95)
            found[f"{label}_p99_ms"] = percentile(values, 0.99)
            found[f"{label}_max_ms"] = round(max(values), 1)
        return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 1)


async def run(url: str, seconds: float, per_minute: float, ring: float, talk: float, wrapup: float,
              breakdown: Breakdown | None = None) -> dict:
    await reset(url, SEED_CALLS)
    settings = fast(load_settings(env={})).with_overrides(
        ami={"secret": "bench-secret"}, asr={"model_path": ""}, database={"url": url},
        recordings={"local_dir": "/nonexistent-bench", "settle_seconds": 0.0, "missing_retries": 1})
    agents = agents_of(settings)
    figures = Figures()
    simulated = SimulatedCalls(call_template())
    pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
    queues = tuple(dict.fromkeys(d.queue for d in settings.departments))
    try:
        await knowledge.seed_from_files(pool)       # config/knowledge: the items the pop shows
        for agent in agents:
            await make_account(pool, settings, f"agent{agent.extension}", extension=agent.extension,
                               name=agent.name)
        async with console_on(settings, pool, emulator=Emulator(members=[], queues=queues)) as rig, \
                AsyncExitStack() as stack:
            listeners = []
            for agent in agents:
                agent.client, agent.csrf = await stack.enter_async_context(person(rig, f"agent{agent.extension}"))
                agent.socket = await agent.client.ws_connect("/ws/console")
                stack.push_async_callback(agent.socket.close)
                listeners.append(asyncio.create_task(listen(agent, figures)))
                status, body = await post(agent.client, agent.csrf, "/api/console/queues/login")
                assert status == 200 and body.get("ok", True), body
            await asyncio.sleep(1.0)           # every QueueMemberAdded applied, the panels sent
            if breakdown is not None:
                breakdown.install(rig.core)
                listeners.append(asyncio.create_task(breakdown.loop_lateness()))
            calls: list[asyncio.Task] = []
            loop = asyncio.get_running_loop()
            started = loop.time()
            number, turn = 0, 0
            cpu = time.process_time()
            while loop.time() - started < seconds:
                free = [a for a in agents[turn:] + agents[:turn] if not a.busy]
                if free:
                    agent = free[0]
                    turn = (agents.index(agent) + 1) % len(agents)
                    calls.append(asyncio.create_task(one_call(rig, agent, call_events(simulated, number, agent),
                                                              figures, ring, talk, wrapup)))
                    number += 1
                else:
                    figures.skipped += 1
                await asyncio.sleep(max(0.0, started + (number + figures.skipped) * 60 / per_minute - loop.time()))
            await asyncio.gather(*calls)
            cpu = time.process_time() - cpu
            await asyncio.sleep(0.5)
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
            if breakdown is not None:
                breakdown.uninstall()
    finally:
        await pool.close()
    return {
        "agents": len(agents),
        "calls": number,
        "calls_without_a_free_agent": figures.skipped,
        "calls_per_minute": per_minute,
        "state_received": len(figures.state_ms),
        "state_p50_ms": percentile(figures.state_ms, 0.50),
        "state_p95_ms": percentile(figures.state_ms, 0.95),
        "state_p99_ms": percentile(figures.state_ms, 0.99),
        "screen_pop_received": len(figures.pop_ms),
        "screen_pop_with_problems": figures.pop_problems,
        "screen_pop_knowledge_items_mean": round(statistics.fmean(figures.pop_knowledge), 1),
        "screen_pop_history_rows_mean": round(statistics.fmean(figures.pop_history), 1),
        "screen_pop_p50_ms": percentile(figures.pop_ms, 0.50),
        "screen_pop_p95_ms": percentile(figures.pop_ms, 0.95),
        "screen_pop_p99_ms": percentile(figures.pop_ms, 0.99),
        "screen_pop_max_ms": round(max(figures.pop_ms), 1),
        "screen_pop_mean_ms": round(statistics.fmean(figures.pop_ms), 1),
        "process_cpu_seconds": round(cpu, 1),
        **(breakdown.figures() if breakdown is not None else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="how long calls keep arriving")
    parser.add_argument("--calls-per-minute", type=float, default=60.0)
    parser.add_argument("--ring", type=float, default=3.0, help="seconds before the agent answers")
    parser.add_argument("--talk", type=float, default=15.0, help="seconds of talk")
    parser.add_argument("--wrapup", type=float, default=3.0, help="seconds of wrap-up before 'done'")
    parser.add_argument("--quick", action="store_true", help="60 seconds of calls")
    parser.add_argument("--breakdown", action="store_true", help="time the pop's steps inside the service")
    args = parser.parse_args()
    configure_logging("console", level=50)
    seconds = 60.0 if args.quick else args.seconds
    with postgres_server() as (url, _cluster):
        bench_url = asyncio.run(create_migrated_database(url, BENCH_DB))
        result = asyncio.run(run(bench_url, seconds, args.calls_per_minute, args.ring, args.talk, args.wrapup,
                                 Breakdown() if args.breakdown else None))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()

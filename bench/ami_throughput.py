"""AMI events → PostgreSQL: throughput, latency and loss of the real bridge.

Pushes the events of a call captured from Asterisk 22 (capture 2: a call queued
and answered by an agent, 118 events including all the VarSet/RTCP noise) for
N concurrent simulated calls through a real TCP socket into the real bridge
(panoramisk + our layer, tracker, batched writer) and a real PostgreSQL, at a
fixed offered rate, and prints:

* events/s sustained (offered and processed),
* p50/p99 latency from the moment an event is written to the socket (its
  ``Timestamp:`` header, as with timestampevents=yes) to the commit of its row,
* lost and duplicated call records and timeline rows, checked against what the
  tracker makes of one call.

The menu's AsyncAGI events are left out of the stream: menus are driven per call
by the AGI tests, and here they would only measure the stand-in.

The service is the composition root's application (``create_app``) with its
HTTP site up and its own PostgreSQL pools (the call writer's, the API's), so
every committed batch also goes through the event hub: to PostgreSQL NOTIFY
always, and with ``--ws-clients N`` to N WebSocket clients of ``/ws/events``
run in a separate process (``bench.ws_clients``), as browsers would be.

``--consoles N --wallboards M``: N agents' consoles (accounts of the first N
extensions, logged in through the login form, ``/ws/console`` open, logged in
to their queues by QueueAdd to the stand-in's app_queue emulation) in one
process (``bench.console_clients``) and M supervisors' wallboards
(``/ws/events?topics=agents,queues``) in another (``bench.ws_clients``), as
browsers would be; the stream's calls are all offered to 8006, whose console
gets every one of its state changes.

``--api-clients N``: N clients in a separate process (``bench.api_clients``)
loop ``GET /api/calls?limit=500`` against the HTTP site; the bench first runs
the same stream without them (``idle_*`` figures) and prints the p99
event-to-commit latency of both. 2000 older calls are seeded so every page is full.

``--db-outage readonly|stop --outage-at S --outage-for S``: at S seconds into
the stream PostgreSQL becomes read-only (``ALTER DATABASE ... SET
default_transaction_read_only`` and every session terminated, as a standby
after a failover looks) or stops (``pg_ctl stop -m fast``, then start; needs
the throwaway cluster, not DATABASE_URL) for the given time; prints lost and
duplicated rows, dead letters, the largest in-memory backlog and spill, when
the first commit followed the database's return, how long the backlog took to
drain, what /healthz said meanwhile, and the longest write into the AMI socket
(a bridge that stopped reading for a second would be dropped by Asterisk).
``--max-backlog N`` sets ``[calls] max_backlog`` (rows in memory before spilling).

    .venv/bin/python -m bench.ami_throughput --rate 6000 --seconds 60 --calls 200
    .venv/bin/python -m bench.ami_throughput --rate 6000 --seconds 60 --calls 200 --ws-clients 200
    .venv/bin/python -m bench.ami_throughput --rate 6000 --seconds 60 --calls 200 --consoles 28 --wallboards 20
    .venv/bin/python -m bench.ami_throughput --rate 6000 --seconds 30 --calls 200 --api-clients 20
    .venv/bin/python -m bench.ami_throughput --rate 6000 --seconds 40 --calls 200 \
        --db-outage readonly --outage-at 10 --outage-for 10 --max-backlog 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import re
import resource
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from hotline.app import CORE, create_app
from hotline.auth import tokens
from hotline.auth.roles import Role
from hotline.logs import configure_logging
from hotline.settings import load_settings
from hotline.facts import ChangeSet
from ivr.ami.message import normalize
from ivr.calls.tracker import CallTracker
from tests.pg import ThrowawayCluster, _pg_bin, create_migrated_database, postgres_server
from tests.standin import AmiStandIn, Emulator
from tests.web_harness import PASSWORD, fast, make_account

CAPTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/asterisk/call-menu-queue-answered.ami"
SKIP = {"AsyncAGIStart", "AsyncAGIExec", "AsyncAGIEnd", "AGIExecStart", "AGIExecEnd", "FullyBooted",
        "PeerStatus", "ContactStatus", "QueueMemberAdded"}


def call_template(capture: Path = CAPTURE) -> list[str]:
    """The captured call's events as raw AMI text, in order (not the SKIP ones)."""
    raw = capture.read_bytes().decode("utf-8").partition("\r\n")[2]
    events = []
    for block in raw.split("\r\n\r\n"):
        first = block.split("\r\n", 1)[0]
        if first.startswith("Event: ") and first[7:] not in SKIP:
            events.append(block + "\r\n\r\n")
    return events


class SimulatedCalls:
    """Makes call number i's copy of the template: unique ids, channels, bridge."""

    def __init__(self, template: list[str]):
        self.template = template
        self._ids = re.compile(r"1795313795\.([01])|PJSIP/(9000|8006)-0000000([01])|"
                               r"(BridgeUniqueid: [0-9a-f-]+)")

    def events(self, number: int) -> list[str]:
        def sub(match: re.Match) -> str:
            if match.group(1) is not None:
                return f"{1800000000 + number}.{2 * number + int(match.group(1))}"
            if match.group(2) is not None:
                return f"PJSIP/{match.group(2)}-{2 * number + int(match.group(3)):08x}"
            return f"BridgeUniqueid: bench-{number}"
        return [self._ids.sub(sub, e) for e in self.template]


def stamp(event: str, at: float) -> bytes:
    head, _, rest = event.partition("\r\n")
    return f"{head}\r\nTimestamp: {at:.6f}\r\n{rest}".encode("utf-8")


def rows_per_call(template: list[str]) -> tuple[int, int]:
    tracker = CallTracker({"social_security": "social_security"})
    changes = ChangeSet()
    now = datetime.now(timezone.utc)
    for i, event in enumerate(template):
        headers = recorded_messages_from_text(stamp(event, 1000.0 + i).decode())
        changes.extend(tracker.apply(normalize(headers), now))
    return len(changes.timeline), len({c.linkedid for c in changes.calls})


def recorded_messages_from_text(text: str) -> dict[str, str]:
    headers = {}
    for line in text.strip().split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            headers.setdefault(key, value)
    return headers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def start_browsers(port: int, clients: int, token: str, query: str = "") -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ws_clients", "--url", f"ws://127.0.0.1:{port}/ws/events{query}",
        "--clients", str(clients), "--token", token, stdout=asyncio.subprocess.PIPE)


def console_logins(settings, count: int) -> list[tuple[str, str]]:
    """(login, extension) of the first ``count`` departments' extensions."""
    extensions = [ext for dept in settings.departments for ext in dept.extensions]
    return [(f"agent{ext}", ext) for ext in extensions[:count]]


async def make_console_accounts(url: str, count: int) -> None:
    settings = fast(load_settings(env={}))
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        for login, extension in console_logins(settings, count):
            await make_account(pool, settings, login, extension=extension, name=f"坐席{extension}")
    finally:
        await pool.close()


async def start_consoles(port: int, logins: list[str]) -> tuple[asyncio.subprocess.Process, int]:
    """The consoles' process, once every console is open and logged in to its queues."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.console_clients", "--url", f"http://127.0.0.1:{port}",
        "--logins", ",".join(logins), "--password", PASSWORD, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 120)
    return process, json.loads(line)["ready"]


async def start_api_clients(port: int, clients: int, token: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.api_clients", "--url", f"http://127.0.0.1:{port}/api/calls?limit=500",
        "--clients", str(clients), "--token", token, stdout=asyncio.subprocess.PIPE)


async def stop_browsers(process: asyncio.subprocess.Process) -> dict:
    process.send_signal(signal.SIGTERM)
    out, _ = await process.communicate()
    return json.loads(out.decode().strip().splitlines()[-1])


BENCH_DB = "hotline_bench"
SEED_CALLS = 2000


async def prepare(admin_url: str) -> tuple[str, str]:
    """A fresh, migrated bench database; returns its URL and a supervisor's API token."""
    url = await create_migrated_database(admin_url, BENCH_DB)
    conn = await asyncpg.connect(url)
    try:
        _, token = await tokens.create(conn, "bench", Role.SUPERVISOR, "bench")
    finally:
        await conn.close()
    return url, token


async def reset(url: str, seed_calls: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE calls, recordings, queue_members, write_dead_letters CASCADE")
        if seed_calls:
            # Older than the bench's calls: history for the API to page through.
            await conn.execute(
                """INSERT INTO calls (linkedid, started_at, caller_number, caller_name, department, queue,
                                      agent_name, queued_at, agent_answered_at, ended_at, hold_seconds,
                                      talk_seconds)
                   SELECT 'seed.' || i, now() - interval '1 day' - i * interval '1 minute', '1380000' || i,
                          '王小明', 'social_security', 'social_security', '坐席8006',
                          now() - interval '1 day', now() - interval '1 day', now() - interval '1 day', 12, 140
                   FROM generate_series(1, $1) AS i""", seed_calls)
        await conn.execute("VACUUM ANALYZE calls")
    finally:
        await conn.close()


async def pg_ctl(cluster: ThrowawayCluster, *args: str) -> None:
    """pg_ctl on the throwaway cluster, without blocking the event loop the bridge runs on."""
    options = (f"-p {cluster.port} -k {cluster.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    command = [*cluster._as_user, _pg_bin("pg_ctl"), "-D", str(cluster.data), "-w", "-t", "60"]
    if args[0] == "start":
        command += ["-o", options, "-l", str(cluster.dir / "server.log")]
    process = await asyncio.create_subprocess_exec(*command, *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"pg_ctl {' '.join(args)}: {out.decode()}")


async def outage(kind: str, at: float, lasting: float, admin_url: str, cluster: ThrowawayCluster | None,
                 core, marks: dict) -> None:
    await asyncio.sleep(at)
    marks["down_at"] = time.time()
    if kind == "readonly":
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f"ALTER DATABASE {BENCH_DB} SET default_transaction_read_only = on")
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                                BENCH_DB)
            await asyncio.sleep(lasting)
            await admin.execute(f"ALTER DATABASE {BENCH_DB} RESET default_transaction_read_only")
        finally:
            await admin.close()
    else:
        assert cluster is not None, "--db-outage stop needs the throwaway cluster (no DATABASE_URL)"
        await pg_ctl(cluster, "stop", "-m", "fast")
        await asyncio.sleep(max(0.0, lasting - (time.time() - marks["down_at"])))
        await pg_ctl(cluster, "start")
    marks["up_at"] = time.time()
    await core.writer.flush(timeout=600)          # everything submitted before it came back
    marks["drained_at"] = time.time()


async def watch(port: int, core, samples: list, stop: asyncio.Event) -> None:
    """/healthz and the writer's backlog, every 0.2 s."""
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz",
                                    timeout=aiohttp.ClientTimeout(total=3)) as response:
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status = 0
            samples.append((time.time(), status, core.writer.backlog, core.writer.spilled))
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except asyncio.TimeoutError:
                pass


async def run(rate: int, seconds: float, concurrent: int, database_url: str, ws_clients: int, *,
              api_clients: int = 0, token: str = "", outage_kind: str | None = None, outage_at: float = 10.0,
              outage_for: float = 10.0, admin_url: str = "", cluster: ThrowawayCluster | None = None,
              max_backlog: int | None = None, seed_calls: int = 0, spill_dir: str = "",
              consoles: int = 0, wallboards: int = 0) -> dict:
    settings = load_settings(env={})
    http_port = free_port()
    calls = {"spill_dir": spill_dir}
    if max_backlog is not None:
        calls["max_backlog"] = max_backlog
    settings = settings.with_overrides(
        ami={"secret": "s3cret-for-the-bench-only", "ping_interval": 5.0, "ping_timeout": 5.0},
        recordings={"local_dir": "/nonexistent-bench", "settle_seconds": 0.0, "missing_retries": 1},
        service={"http_host": "127.0.0.1", "http_port": http_port},
        asr={"model_path": ""},
        database={"url": database_url},
        calls=calls,
    )
    if consoles:
        settings = fast(settings)       # the accounts' hashes (make_console_accounts)
    await reset(database_url, seed_calls)
    template = call_template()
    simulated = SimulatedCalls(template)
    expected_rows, _ = rows_per_call(template)
    latencies: list[float] = []
    commits: list[float] = []
    marks: dict[str, float] = {}
    samples: list[tuple[float, int, int, int]] = []
    stall = 0.0

    # The consoles' agents join every department's queue as members nobody had before.
    emulator = Emulator(members=[], queues=tuple(d.queue for d in settings.departments)) if consoles else None
    async with AmiStandIn([], emulator=emulator) as server:
        app = create_app(settings.with_overrides(ami={"port": server.port}))
        core = app[CORE]

        def committed(batch):
            commits.append(batch.committed_at)
            latencies.extend(batch.committed_at - e.occurred_at.timestamp() for e in batch.timeline)

        core.hub.subscribe(committed, remote=False)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", http_port).start()
        browsers = await start_browsers(http_port, ws_clients, token) if ws_clients else None
        boards = (await start_browsers(http_port, wallboards, token, "?topics=agents,queues")
                  if wallboards else None)
        if browsers is not None or boards is not None:
            for _ in range(300):
                if core.hub.browsers.clients() >= ws_clients + wallboards:
                    break
                await asyncio.sleep(0.05)
        await core.ami.wait_logged_in(5)
        agents, consoles_ready = (await start_consoles(http_port, [login for login, _ in console_logins(
            settings, consoles)]) if consoles else (None, 0))
        if agents is not None:
            await asyncio.sleep(1.0)     # the QueueMemberAdded events applied and sent before the stream
        api = await start_api_clients(http_port, api_clients, token) if api_clients else None
        if api is not None:
            await asyncio.sleep(2.0)     # the clients are up and looping before the stream starts
        watching = asyncio.Event()
        watcher = asyncio.create_task(watch(http_port, core, samples, watching)) if outage_kind else None
        failing = (asyncio.create_task(outage(outage_kind, outage_at, outage_for, admin_url, cluster, core, marks))
                   if outage_kind else None)
        attached = core.hub.browsers.clients()
        active: list[tuple[int, int]] = []  # (call number, next event index)
        next_call = 0
        sent = 0
        calls_started = 0
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        loop = asyncio.get_running_loop()
        started = loop.time()
        cpu_start = time.process_time()
        cache: dict[int, list[str]] = {}
        # New calls start for `seconds`; the calls in flight then finish at the same pace.
        while loop.time() - started < seconds or active:
            accepting = loop.time() - started < seconds
            chunk = []
            now = time.time()
            while len(chunk) < per_tick and (active or accepting):
                while accepting and len(active) < concurrent:
                    active.append((next_call, 0))
                    cache[next_call] = simulated.events(next_call)
                    next_call += 1
                    calls_started += 1
                slot = len(chunk) % len(active)
                number, index = active[slot]
                chunk.append(stamp(cache[number][index], now))
                if index + 1 == len(template):
                    active.pop(slot)
                    del cache[number]
                else:
                    active[slot] = (number, index + 1)
            before = loop.time()
            await server.inject(b"".join(chunk), conn_index=0)
            stall = max(stall, loop.time() - before)
            sent += len(chunk)
            target = started + (sent / rate)
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        offered_for = loop.time() - started
        await core.ami.request({"Action": "Ping"}, timeout=120)
        if failing is not None:
            await failing
        await core.writer.flush(timeout=600)
        drained_for = loop.time() - started
        cpu = time.process_time() - cpu_start
        api_result = await stop_browsers(api) if api is not None else None
        if watcher is not None:
            watching.set()
            await watcher
        await asyncio.sleep(0.5)   # the last messages reach the browsers
        received = await stop_browsers(browsers) if browsers is not None else None
        boards_received = await stop_browsers(boards) if boards is not None else None
        consoles_received = await stop_browsers(agents) if agents is not None else None
        batches = core.writer.batches
        dropped = core.hub.browsers.dropped
        dead_lettered = core.writer.dead_lettered
        spilled_total = core.writer.spilled_total
        await runner.cleanup()

    conn = await asyncpg.connect(database_url)
    try:
        calls = await conn.fetchval("SELECT count(*) FROM calls WHERE linkedid NOT LIKE 'seed.%'")
        rows = await conn.fetchval("SELECT count(*) FROM call_events")
        distinct = await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT linkedid, uniqueid, occurred_at, kind, detail::text "
            "FROM call_events) x")
        wrong = await conn.fetchval(
            "SELECT count(*) FROM (SELECT linkedid FROM call_events GROUP BY linkedid HAVING count(*) <> $1) x",
            expected_rows)
        unanswered = await conn.fetchval("SELECT count(*) FROM call_outcomes WHERE outcome <> 'answered' "
                                         "AND linkedid NOT LIKE 'seed.%'")
        letters = await conn.fetchval("SELECT count(*) FROM write_dead_letters")
    finally:
        await conn.close()
    latencies.sort()
    result = {
        "events_sent": sent,
        "calls": calls_started,
        "offered_seconds": round(offered_for, 1),
        "events_per_second_offered": round(sent / offered_for),
        "events_per_second_processed": round(sent / drained_for),
        "timeline_rows": rows,
        "timeline_rows_expected": calls_started * expected_rows,
        "call_rows": calls,
        "calls_with_wrong_row_count": wrong,
        "calls_not_answered": unanswered,
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1) if latencies else None,
        "latency_max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "bridge_cpu_seconds": round(cpu, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "write_batches": batches,
        "ws_clients_attached": attached,
        "ws_clients_dropped": dropped,
        "timeline_rows_lost": max(0, calls_started * expected_rows - rows),
        "timeline_rows_duplicated": rows - distinct,
        "dead_letters": letters,
        "dead_lettered_by_writer": dead_lettered,
        "ami_write_stall_max_ms": round(stall * 1000, 1),
    }
    if received is not None:
        result.update({f"ws_{k}": v for k, v in received.items()})
        result["ws_messages_per_client"] = round(received["messages"] / max(1, received["connected"]), 1)
    if consoles_received is not None:
        result["consoles_ready"] = consoles_ready
        result.update({f"consoles_{k}": v for k, v in consoles_received.items()})
    if boards_received is not None:
        result.update({f"wallboards_{k}": v for k, v in boards_received.items()})
        result["wallboards_messages_per_client"] = round(
            boards_received["messages"] / max(1, boards_received["connected"]), 1)
    if api_result is not None:
        result.update({f"api_{k}": v for k, v in api_result.items()})
    if outage_kind:
        down, up = marks["down_at"], marks["up_at"]
        during = [status for t, status, _, _ in samples if down + 1.0 <= t <= up]
        after_ok = [t for t, status, _, _ in samples if t > up and status == 200]
        result.update({
            "outage": outage_kind,
            "outage_seconds": round(up - down, 1),
            "first_commit_after_return_s": round(min((c for c in commits if c > up), default=float("nan")) - up, 2),
            "backlog_drained_after_return_s": round(marks["drained_at"] - up, 2),
            "max_backlog_rows_in_memory": max((b for _, _, b, _ in samples), default=0),
            "max_spilled_rows": max((s for _, _, _, s in samples), default=0),
            "rows_spilled_total": spilled_total,
            "healthz_503_during_outage": f"{sum(1 for s in during if s == 503)}/{len(during)}",
            "healthz_200_after_return_s": round(after_ok[0] - up, 2) if after_ok else None,
        })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=6000, help="offered AMI events per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--calls", type=int, default=200, help="concurrent simulated calls")
    parser.add_argument("--ws-clients", type=int, default=0,
                        help="WebSocket clients of /ws/events, in a separate process")
    parser.add_argument("--api-clients", type=int, default=0,
                        help="clients looping GET /api/calls?limit=500, in a separate process "
                             "(after an idle run of the same stream)")
    parser.add_argument("--consoles", type=int, default=0,
                        help="agents' consoles (/ws/console, logged in), in a separate process")
    parser.add_argument("--wallboards", type=int, default=0,
                        help="supervisors' wallboards (/ws/events?topics=agents,queues), in a separate process")
    parser.add_argument("--db-outage", choices=("readonly", "stop"))
    parser.add_argument("--outage-at", type=float, default=10.0, help="seconds into the stream")
    parser.add_argument("--outage-for", type=float, default=10.0)
    parser.add_argument("--max-backlog", type=int, help="[calls] max_backlog: rows in memory before spilling")
    args = parser.parse_args()
    configure_logging("console", level=50)
    spill = tempfile.mkdtemp(prefix="hotline-bench-spill-")
    try:
        with postgres_server() as (url, cluster):
            bench_url, token = asyncio.run(prepare(url))
            if args.consoles:
                asyncio.run(make_console_accounts(bench_url, args.consoles))
            common = dict(rate=args.rate, seconds=args.seconds, concurrent=args.calls, database_url=bench_url,
                          ws_clients=args.ws_clients, token=token, admin_url=url, cluster=cluster,
                          max_backlog=args.max_backlog, spill_dir=spill, consoles=args.consoles,
                          wallboards=args.wallboards)
            if args.api_clients:
                idle = asyncio.run(run(**common, seed_calls=SEED_CALLS))
                result = asyncio.run(run(**common, seed_calls=SEED_CALLS, api_clients=args.api_clients))
                result.update({"idle_latency_p50_ms": idle["latency_p50_ms"],
                               "idle_latency_p99_ms": idle["latency_p99_ms"],
                               "idle_latency_max_ms": idle["latency_max_ms"],
                               "p99_vs_idle": round(result["latency_p99_ms"] / idle["latency_p99_ms"], 2)})
            else:
                result = asyncio.run(run(**common, outage_kind=args.db_outage, outage_at=args.outage_at,
                                         outage_for=args.outage_for))
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()

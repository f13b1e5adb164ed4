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
HTTP site up, so every committed batch also goes through the event hub: to
PostgreSQL NOTIFY always, and with ``--ws-clients N`` to N WebSocket clients
of ``/ws/events`` run in a separate process (``bench.ws_clients``), as
browsers would be.

    .venv/bin/python -m bench.ami_throughput --rate 6000 --seconds 60 --calls 200
    .venv/bin/python -m bench.ami_throughput --rate 6000 --seconds 60 --calls 200 --ws-clients 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import os
import re
import resource
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
from aiohttp import web

from hotline.app import CORE, create_app
from hotline.db import migrate
from hotline.logs import configure_logging
from hotline.settings import load_settings
from hotline.facts import ChangeSet
from ivr.ami.message import normalize
from ivr.calls.tracker import CallTracker
from tests.pg import ThrowawayCluster
from tests.standin import AmiStandIn

CAPTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/asterisk/call-menu-queue-answered.ami"
SKIP = {"AsyncAGIStart", "AsyncAGIExec", "AsyncAGIEnd", "AGIExecStart", "AGIExecEnd", "FullyBooted",
        "PeerStatus", "ContactStatus", "QueueMemberAdded"}


def call_template() -> list[str]:
    """The captured call's events as raw AMI text, in order."""
    raw = CAPTURE.read_bytes().decode("utf-8").partition("\r\n")[2]
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


async def start_browsers(port: int, clients: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ws_clients", "--url", f"ws://127.0.0.1:{port}/ws/events",
        "--clients", str(clients), stdout=asyncio.subprocess.PIPE)
    return process


async def stop_browsers(process: asyncio.subprocess.Process) -> dict:
    process.send_signal(signal.SIGTERM)
    out, _ = await process.communicate()
    return json.loads(out.decode().strip().splitlines()[-1])


async def run(rate: int, seconds: float, concurrent: int, database_url: str, ws_clients: int) -> dict:
    settings = load_settings(env={})
    http_port = free_port()
    settings = settings.with_overrides(
        ami={"secret": "s3cret", "ping_interval": 5.0, "ping_timeout": 5.0},
        recordings={"local_dir": "/nonexistent-bench", "settle_seconds": 0.0, "missing_retries": 1},
        service={"http_host": "127.0.0.1", "http_port": http_port},
        asr={"model_path": ""},
    )
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=6)
    async with pool.acquire() as conn:
        await migrate(conn)
        await conn.execute("TRUNCATE calls, recordings, queue_members CASCADE")
    template = call_template()
    simulated = SimulatedCalls(template)
    expected_rows, _ = rows_per_call(template)
    latencies: list[float] = []

    async with AmiStandIn([]) as server:
        app = create_app(settings.with_overrides(ami={"port": server.port}), pool=pool)
        core = app[CORE]

        def committed(batch):
            latencies.extend(batch.committed_at - e.occurred_at.timestamp() for e in batch.timeline)

        core.hub.subscribe(committed, remote=False)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", http_port).start()
        browsers = await start_browsers(http_port, ws_clients) if ws_clients else None
        if browsers is not None:
            for _ in range(300):
                if core.hub.browsers.clients() >= ws_clients:
                    break
                await asyncio.sleep(0.05)
        await core.ami.wait_logged_in(5)
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
            await server.inject(b"".join(chunk), conn_index=0)
            sent += len(chunk)
            target = started + (sent / rate)
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        offered_for = loop.time() - started
        await core.ami.request({"Action": "Ping"}, timeout=120)
        await core.writer.flush(timeout=120)
        drained_for = loop.time() - started
        cpu = time.process_time() - cpu_start
        await asyncio.sleep(0.5)   # the last messages reach the browsers
        received = await stop_browsers(browsers) if browsers is not None else None
        batches = core.writer.batches
        dropped = core.hub.browsers.dropped
        await runner.cleanup()

    async with pool.acquire() as conn:
        calls = await conn.fetchval("SELECT count(*) FROM calls")
        rows = await conn.fetchval("SELECT count(*) FROM call_events")
        wrong = await conn.fetchval(
            "SELECT count(*) FROM (SELECT linkedid FROM call_events GROUP BY linkedid HAVING count(*) <> $1) x",
            expected_rows)
        unanswered = await conn.fetchval("SELECT count(*) FROM call_outcomes WHERE outcome <> 'answered'")
    await pool.close()
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
    }
    if received is not None:
        result.update({f"ws_{k}": v for k, v in received.items()})
        result["ws_messages_per_client"] = round(received["messages"] / max(1, received["connected"]), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=6000, help="offered AMI events per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--calls", type=int, default=200, help="concurrent simulated calls")
    parser.add_argument("--ws-clients", type=int, default=0,
                        help="WebSocket clients of /ws/events, in a separate process")
    args = parser.parse_args()
    configure_logging("console", level=50)
    cluster = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        cluster = ThrowawayCluster()
        url = cluster.start()
    try:
        result = asyncio.run(run(args.rate, args.seconds, args.calls, url, args.ws_clients))
    finally:
        if cluster:
            cluster.stop()
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()

"""Catching up from Asterisk's own records: how long the first reading of a
large queue_log and Master.csv takes, and what every later run costs.

Writes a queue_log of ``--lines`` lines (default 100 000: about two years of
this hotline's calls) in the format Asterisk 22 writes (the lines of
tests/fixtures/asterisk/logs/queue_log, with other Uniqueids and times): per
call ENTERQUEUE then CONNECT + COMPLETECALLER (answered) or ABANDON, with
member events (ADDMEMBER, PAUSE, UNPAUSE) in between; a Master.csv with one
line per call; and ``--recordings`` MixMonitor files (small WAVs) named after
calls. Then starts the real service (``create_app``, an idle AMI stand-in,
a real PostgreSQL with every migration) on a database that has none of those
calls, and prints:

* the first run: lines/s and calls/s until every call is in PostgreSQL and
  every recording registered (start-up to settled);
* a second run with nothing new (what every login and every ``interval`` costs,
  the recordings folder sweep included);
* a run after ``--append`` new lines (the usual case: a few calls while the
  bridge was away);
* rows made: calls, timeline rows, recordings; a third run must add none;
* how long the event loop (which reads AMI) was held during the first run:
  p99 and max lateness of a 10 ms timer.

    .venv/bin/python -m bench.reconcile
    .venv/bin/python -m bench.reconcile --lines 100000 --recordings 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import wave
from pathlib import Path

import asyncpg

from hotline.app import create_app
from hotline.logs import configure_logging
from hotline.settings import load_settings
from ivr.calls.setup import CATCH_UP
from tests.bridge_harness import running
from tests.pg import create_migrated_database, postgres_server
from tests.standin import AmiStandIn

BENCH_DB = "hotline_bench_reconcile"
START = 1_770_000_000          # 2026-02-02: the calls' first Uniqueid
QUEUES = ["general_queue", "social_security", "tax", "medical_insurance", "housing_fund"]


def call_lines(n: int, rng: random.Random) -> tuple[list[str], str]:
    """The queue_log lines of call ``n`` and its Master.csv line."""
    began = START + n * 600 + rng.randrange(300)
    uniqueid = f"{began}.{n}"
    queue = rng.choice(QUEUES)
    joined = began + rng.randrange(5, 40)
    lines = [f"{joined}|{uniqueid}|{queue}|NONE|ENTERQUEUE||1380013{n % 10000:04d}|1"]
    if rng.random() < 0.9:
        hold, talk = rng.randrange(0, 60), rng.randrange(20, 600)
        agent = f"坐席80{rng.randrange(1, 29):02d}"
        lines.append(f"{joined + hold}|{uniqueid}|{queue}|{agent}|CONNECT|{hold}|{began}.{n + 1}|{rng.randrange(1, 9)}")
        lines.append(f"{joined + hold + talk}|{uniqueid}|{queue}|{agent}|COMPLETECALLER|{hold}|{talk}|1")
        ended = joined + hold + talk
    else:
        hold = rng.randrange(1, 90)
        lines.append(f"{joined + hold}|{uniqueid}|{queue}|NONE|ABANDON|1|1|{hold}")
        ended = joined + hold
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(began))
    end = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ended))
    cdr = (f'"","1380013{n % 10000:04d}","s","hotline","""王小明"" <1380013{n % 10000:04d}>",'
           f'"PJSIP/carrier-{n:08x}","","Queue","{queue}","{stamp}","{stamp}","{end}",'
           f'{ended - began},{ended - began},"ANSWERED","DOCUMENTATION","{uniqueid}",""')
    return lines, cdr


def write_records(folder: Path, lines: int, rng: random.Random, first_call: int = 0) -> tuple[int, list[str]]:
    """Append about ``lines`` queue_log lines (and their calls' CDRs); returns
    (lines, the calls' Uniqueids)."""
    queue_log, master = folder / "queue_log", folder / "cdr-csv" / "Master.csv"
    master.parent.mkdir(parents=True, exist_ok=True)
    written, calls = 0, []
    with queue_log.open("a", encoding="utf-8") as q, master.open("a", encoding="utf-8") as m:
        n = first_call
        while written < lines:
            if n % 50 == 0:     # member events, about no call
                q.write(f"{START + n * 600}|MANAGER|{rng.choice(QUEUES)}|PJSIP/8006|ADDMEMBER|\n")
                q.write(f"{START + n * 600}|NONE|{rng.choice(QUEUES)}|坐席8006|PAUSE|午休\n")
                written += 2
            entries, cdr = call_lines(n, rng)
            q.write("".join(e + "\n" for e in entries))
            m.write(cdr + "\n")
            written += len(entries)
            calls.append(entries[0].split("|")[1])
            n += 1
    return written, calls


def write_recordings(monitor: Path, uniqueids: list[str], count: int) -> None:
    step = max(1, len(uniqueids) // max(count, 1))
    for uniqueid in uniqueids[::step][:count]:
        began = int(uniqueid.split(".")[0])
        path = monitor / time.strftime("%Y/%m/%d", time.gmtime(began)) / f"{uniqueid}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(b"\x00\x00" * 800)
        os.utime(path, (began + 60, began + 60))


async def rows(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in ("calls", "call_events", "recordings")}
    finally:
        await conn.close()


async def bench(url: str, args: argparse.Namespace, folder: Path) -> dict:
    rng = random.Random(7)
    lines, uniqueids = write_records(folder / "logs", args.lines, rng)
    calls = len(uniqueids)
    write_recordings(folder / "monitor", uniqueids, args.recordings)
    settings = load_settings(env={}).with_overrides(
        database={"url": url},
        ami={"secret": "bench-secret-0123456789", "reconnect_min": 0.05},
        recordings={"local_dir": str(folder / "monitor"), "settle_seconds": 0.0},
        reconcile={"queue_log": str(folder / "logs" / "queue_log"),
                   "cdr_csv": str(folder / "logs" / "cdr-csv" / "Master.csv"), "interval": 0.0},
    )
    result: dict = {"queue_log_lines": lines, "calls_in_files": calls, "recording_files": args.recordings,
                    "queue_log_mb": round((folder / "logs" / "queue_log").stat().st_size / 1e6, 1)}
    lags: list[float] = []

    async def watch_loop() -> None:
        """How late a 10 ms sleep wakes up: how long the event loop (which reads AMI) was held."""
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - began - 0.01)

    async with AmiStandIn([]) as server:
        app = create_app(settings.with_overrides(ami={"port": server.port}))
        began = time.perf_counter()
        async with running(app) as core:
            watcher = asyncio.create_task(watch_loop())    # from here: start-up is the service's own
            assert core.ami is not None
            await core.ami.wait_logged_in(timeout=10)
            await core.settle(timeout=600)
            first = time.perf_counter() - began
            watcher.cancel()
            lags.sort()
            result.update(first_run_seconds=round(first, 2), first_run_lines_per_s=round(lines / first),
                          first_run_calls_per_s=round(calls / first), rows_after_first=await rows(url),
                          first_run_loop_lag_p99_ms=round(lags[int(len(lags) * 0.99)] * 1000, 1),
                          first_run_loop_lag_max_ms=round(lags[-1] * 1000, 1))
            catch_up = app[CATCH_UP]
            began = time.perf_counter()
            await catch_up.run()
            result["idle_run_ms"] = round((time.perf_counter() - began) * 1000, 1)
            appended, _ = write_records(folder / "logs", args.append, rng, first_call=calls)
            began = time.perf_counter()
            await catch_up.run()
            await core.settle()
            result.update(append_lines=appended, append_run_ms=round((time.perf_counter() - began) * 1000, 1))
            before = await rows(url)
            await catch_up.run()
            await core.settle()
            result["rows_added_by_a_run_with_nothing_new"] = {
                k: v - before[k] for k, v in (await rows(url)).items()}
            result["rows_at_end"] = await rows(url)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000, help="queue_log lines to write first")
    parser.add_argument("--recordings", type=int, default=5_000, help="MixMonitor files named after those calls")
    parser.add_argument("--append", type=int, default=1_000, help="lines written before the incremental run")
    args = parser.parse_args()
    configure_logging("console", level=30)
    with postgres_server() as (url, _cluster), tempfile.TemporaryDirectory(prefix="hotline-bench-reconcile-") as folder:
        bench_url = asyncio.run(create_migrated_database(url, BENCH_DB))
        result = asyncio.run(bench(bench_url, args, Path(folder)))
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()

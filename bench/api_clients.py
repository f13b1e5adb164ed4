"""N HTTP clients looping ``GET /api/calls?limit=500``, as consoles and
wallboards polling the API would: started by ``bench.ami_throughput
--api-clients N`` in a process of their own (clients are not in the bridge's
process). On SIGTERM prints one JSON line: requests by status, errors, rows
received, response time p50/p99.

    python -m bench.api_clients --url http://127.0.0.1:8080/api/calls?limit=500 --clients 20 --token hl_...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import time
from collections import Counter

import aiohttp


async def client(session: aiohttp.ClientSession, url: str, headers: dict[str, str], stop: asyncio.Event,
                 statuses: Counter, times: list[float], totals: dict[str, int]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            async with session.get(url, headers=headers) as response:
                body = await response.read()
                statuses[str(response.status)] += 1
                if response.status == 200:
                    totals["rows"] += body.count(b'"linkedid"')   # no full parse: the CPU is the bridge's
                    times.append(time.perf_counter() - started)
                elif response.status == 503:
                    await asyncio.sleep(0.05)
        except aiohttp.ClientError:
            totals["errors"] += 1
            await asyncio.sleep(0.1)


async def main(url: str, clients: int, token: str) -> None:
    statuses: Counter = Counter()
    times: list[float] = []
    totals = {"rows": 0, "errors": 0}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(client(session, url, headers, stop, statuses, times, totals))
                 for _ in range(clients)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - started
    times.sort()
    print(json.dumps({
        "requests": sum(statuses.values()), "statuses": dict(statuses), "errors": totals["errors"],
        "requests_per_second": round(sum(statuses.values()) / elapsed, 1),
        "rows_per_second": round(totals["rows"] / elapsed),
        "p50_ms": round(statistics.median(times) * 1000, 1) if times else None,
        "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 1) if times else None,
    }), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.clients, args.token))

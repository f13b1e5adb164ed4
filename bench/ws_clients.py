"""N WebSocket clients of ``/ws/events``, as browsers would be: started by
``bench.ami_throughput --ws-clients N`` in a process of their own (browsers are
not in the bridge's process). On SIGTERM prints one JSON line: clients that
connected, that were dropped, messages and bytes received.

    python -m bench.ws_clients --url ws://127.0.0.1:8080/ws/events --clients 200 --token hl_...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

import aiohttp


async def client(session: aiohttp.ClientSession, url: str, token: str, totals: dict[str, int]) -> None:
    try:
        async with session.ws_connect(url, autoping=True, headers={"Authorization": f"Bearer {token}"}) as socket:
            totals["connected"] += 1
            async for message in socket:
                if message.type is aiohttp.WSMsgType.TEXT:
                    totals["messages"] += 1
                    totals["bytes"] += len(message.data)
            if socket.close_code == 1013:
                totals["dropped"] += 1
    except aiohttp.ClientError:
        totals["failed"] += 1


def sigterm() -> asyncio.Event:
    """Set at SIGTERM (how the bench stops its clients)."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return stop


async def until_stopped(stop: asyncio.Event, tasks: list[asyncio.Task], totals: dict[str, int]) -> None:
    """Once ``stop`` is set: the clients cancelled, their totals printed as one JSON line."""
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(totals), flush=True)


async def main(url: str, clients: int, token: str) -> None:
    totals = {"connected": 0, "dropped": 0, "failed": 0, "messages": 0, "bytes": 0}
    stop = sigterm()
    # limit=0: one connection per client (the default pool stops at 100).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(client(session, url, token, totals)) for _ in range(clients)]
        await until_stopped(stop, tasks, totals)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--token", required=True, help="a supervisor's API token (hotline tokens create)")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.clients, args.token))

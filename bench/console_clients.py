"""N agents' consoles, as their browsers would hold them: started by
``bench.ami_throughput --consoles N`` in a process of its own. Each logs in
through the login form (its own cookie jar), opens ``/ws/console`` with its
session and logs in to its queues (``POST /api/console/queues/login``); then
prints one JSON line ``{"ready": n}`` and reads its messages. On SIGTERM prints
one JSON line: consoles that connected, that were closed by the server, that
failed, messages and bytes received.

    python -m bench.console_clients --url http://127.0.0.1:8080 --logins agent8001,agent8002 --password ...
"""

from __future__ import annotations

import argparse
import asyncio
import json

import aiohttp

from bench.ws_clients import sigterm, until_stopped
from tests.web_harness import csrf_of, hidden


async def console(url: str, login: str, password: str, totals: dict[str, int], ready: asyncio.Queue) -> None:
    # unsafe: keep the session cookie of a site named by its IP address, as browsers do.
    async with aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        try:
            async with http.get("/login") as page:
                token = hidden(await page.text(), "login_token")
            async with http.post("/login", data={"login": login, "password": password, "login_token": token,
                                                 "next": "/console"}, allow_redirects=False) as answer:
                assert answer.status == 303, (login, answer.status)
            async with http.get("/console") as page:
                csrf = csrf_of(await page.text())
            async with http.ws_connect("/ws/console", autoping=True) as socket:
                totals["connected"] += 1
                async with http.post("/api/console/queues/login", json={},
                                     headers={"X-CSRF-Token": csrf}) as answer:
                    totals["queue_logins_ok"] += answer.status == 200 and (await answer.json()).get("ok", True)
                await ready.put(login)
                async for message in socket:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        totals["messages"] += 1
                        totals["bytes"] += len(message.data)
                totals["closed_by_server"] += 1
        except (aiohttp.ClientError, AssertionError):
            totals["failed"] += 1
            await ready.put(None)


async def main(url: str, logins: list[str], password: str) -> None:
    totals = {"connected": 0, "queue_logins_ok": 0, "closed_by_server": 0, "failed": 0, "messages": 0, "bytes": 0}
    stop = sigterm()
    ready: asyncio.Queue = asyncio.Queue()
    tasks = [asyncio.create_task(console(url, login, password, totals, ready)) for login in logins]
    for _ in logins:
        await ready.get()
    print(json.dumps({"ready": totals["connected"]}), flush=True)
    await until_stopped(stop, tasks, totals)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the service's HTTP site")
    parser.add_argument("--logins", required=True, help="comma-separated agents' logins")
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.logins.split(","), args.password))

"""Two real ``hotline serve`` processes on one database: the bridge, connected
to the Asterisk stand-in, commits a call; a browser attached to the other, a
web-only process, receives it over WebSocket (through PostgreSQL NOTIFY)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.bridge_harness import bearer, ended_call
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AmiStandIn, Transcript

ABANDONED_CALL = "1795313813.2"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@asynccontextmanager
async def hotline_serve(database_url: str, http_port: int, tmp_path: Path, *args: str, ami_port: int = 1):
    env = {**os.environ, "HOTLINE_DATABASE_URL": database_url, "HOTLINE_HTTP_PORT": str(http_port),
           "HOTLINE_AMI_HOST": "127.0.0.1", "HOTLINE_AMI_PORT": str(ami_port),
           "HOTLINE_AMI_SECRET": "two-processes-test-secret-0123",  # serve refuses a weak one
           "HOTLINE_RECORDINGS_DIR": str(tmp_path / "monitor"), "HOTLINE_LOG_FORMAT": "json",
           "HOTLINE_ASR_MODEL_PATH": ""}
    log = (tmp_path / f"serve-{http_port}.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotline.cli", "serve", *args, cwd=REPO, env=env,
        stdout=log, stderr=asyncio.subprocess.STDOUT)
    try:
        await _healthy(http_port, process, tmp_path / f"serve-{http_port}.log")
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            assert await asyncio.wait_for(process.wait(), 15) == 0
        log.close()


async def _healthy(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if process.returncode is not None:
                raise AssertionError(f"hotline serve exited {process.returncode}:\n{log.read_text()}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"hotline serve on {port} never became healthy:\n{log.read_text()}")


async def test_event_committed_by_one_process_reaches_a_browser_of_the_other(database_url, db, tmp_path):
    web_port, bridge_port = free_port(), free_port()
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    async with hotline_serve(database_url, web_port, tmp_path, "--web-only"):
        async with aiohttp.ClientSession() as http:
            browser = await http.ws_connect(f"http://127.0.0.1:{web_port}/ws/events", headers=await bearer(db))
            async with AmiStandIn([transcript.connection(1)]) as asterisk:
                async with hotline_serve(database_url, bridge_port, tmp_path, ami_port=asterisk.port):
                    await ended_call(db, ABANDONED_CALL, timeout=20)
                    kinds: list[str] = []
                    origins: set[str] = set()
                    while "channel.hangup" not in kinds:
                        message = await browser.receive(timeout=10)
                        body = json.loads(message.data)
                        origins.add(body["origin"])
                        kinds += [row["kind"] for row in body["timeline"] if row["linkedid"] == ABANDONED_CALL]
            await browser.close()
    assert kinds[0] == "channel.created"
    assert {"queue.joined", "queue.abandoned", "channel.hangup"} <= set(kinds)
    assert len(origins) == 1   # all from the bridge process, none from the web-only one
    async with db.acquire() as conn:
        stored = [r["kind"] for r in await conn.fetch(
            "SELECT kind FROM call_events WHERE linkedid = $1 ORDER BY occurred_at, id", ABANDONED_CALL)]
    assert kinds == stored[:len(kinds)]

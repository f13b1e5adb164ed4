"""Running the real service (the composition root's application, without its
HTTP listener) against the Asterisk stand-in and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import asyncpg

from aiohttp import web

from hotline.app import CORE, create_app
from hotline.core import Core
from hotline.settings import Settings
from ivr.menu.setup import VOICE_LISTENER
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AmiStandIn, Script, Send, Transcript

RECORDED_MONITOR = ASTERISK_FIXTURES / "recordings" / "monitor"
MENU_CAPTURE = ASTERISK_FIXTURES / "call-menu-queue-answered.jsonl"


def menu_call_script() -> Script:
    """Capture 2 with the recorder's own menu commands taken out: our menu sends
    its own, answered by the emulated caller, until it queues the caller, where the
    capture takes over again. The recorder sent ``EXEC Queue social_security``; our
    menu sends it with option ``c`` (the survey after the agent hangs up) and queues
    ``ASYNCAGI BREAK`` behind it (ivr/menu/queueing.py). Asterisk answers both alike
    until the call ends; this caller hangs up, which Queue() with ``c`` would report
    as ``200 result=0`` (apps/app_queue.c) where the capture, without it, says
    ``200 result=-1``. The BREAK never runs: the AGI session ends with the call."""
    transcript = Transcript.load(MENU_CAPTURE)
    return (transcript.connection(1).without_agi(lambda command: not command.startswith("EXEC Queue"))
            .with_agi_command("EXEC Queue social_security", "EXEC Queue social_security,c"))


def install_recordings(settings: Settings) -> Path:
    """Put the captured MixMonitor files where the bridge looks for them, as
    files just written: the calls they belong to are about to be replayed, so
    for the catch-up's sweep they are still being recorded."""
    target = Path(settings.recordings.local_dir)
    shutil.copytree(RECORDED_MONITOR, target, dirs_exist_ok=True, copy_function=shutil.copyfile)
    return target


@asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[Core]:
    """The application started (cleanup_ctx entered) and stopped, with no HTTP site."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        yield app[CORE]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def app_on(server: AmiStandIn, settings: Settings, pool: asyncpg.Pool,
                 listener=None) -> AsyncIterator[web.Application]:
    """The service connected to the stand-in, as its application (for a feature's
    object in it, e.g. ``app[AGENT_DESK]``); ``listener``: a spoken menu the test
    built (else the settings decide, which in tests means keypad only)."""
    app = create_app(settings.with_overrides(ami={"port": server.port}), pool=pool,
                     provide={VOICE_LISTENER: listener} if listener is not None else None)
    async with running(app) as core:
        assert core.ami is not None
        await core.ami.wait_logged_in(timeout=5)
        yield app


@asynccontextmanager
async def bridge_on(server: AmiStandIn, settings: Settings, pool: asyncpg.Pool,
                    listener=None) -> AsyncIterator[Core]:
    """The service connected to the stand-in (see :func:`app_on`), as its core."""
    async with app_on(server, settings, pool, listener) as app:
        yield app[CORE]


async def eventually(check: Callable[[], Awaitable[object]], timeout: float = 10.0, what: str = "") -> object:
    """Poll ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


async def call_row(pool: asyncpg.Pool, linkedid: str):
    async with pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM call_outcomes WHERE linkedid = $1", linkedid)


async def ended_call(pool: asyncpg.Pool, linkedid: str, timeout: float = 10.0):
    async def check():
        row = await call_row(pool, linkedid)
        return row if row is not None and row["outcome"] != "in_progress" else None
    return await eventually(check, timeout, f"call {linkedid} to end")


async def timeline_kinds(pool: asyncpg.Pool, linkedid: str) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT kind FROM call_events WHERE linkedid = $1 ORDER BY occurred_at, id",
                                linkedid)
    return [r["kind"] for r in rows]


async def timeline_detail(pool: asyncpg.Pool, linkedid: str, kind: str) -> list[dict]:
    import json
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT detail FROM call_events WHERE linkedid = $1 AND kind = $2 ORDER BY occurred_at, id",
            linkedid, kind)
    return [json.loads(r["detail"]) for r in rows]


def agi_call(*args: str) -> tuple[Script, bytes]:
    """Capture 2 up to its AsyncAGIStart, as if the dialplan had run
    ``AGI(agi:async,<args>)`` (the survey's and the callback offer's contexts):
    the script (login, the caller's channel) and the AsyncAGIStart to inject
    when the test is ready. res_agi adds ``agi_arg_1: ...`` lines after
    ``agi_threadid`` (res_agi.c, ``setup_env``; not captured: the captured AGI
    had no arguments). The rest of the call is the emulated caller's."""
    from urllib.parse import quote

    script = Transcript.load(MENU_CAPTURE).connection(1).until("Event: AsyncAGIStart")
    last = script.steps[-1]
    data = last.data.decode("utf-8")
    start = data.index("Event: AsyncAGIStart")
    env_end = data.index("%0A%0A", data.index("Env: agi_request", start))
    extra = "".join(quote(f"agi_arg_{n}: {value}\n", safe="") for n, value in enumerate(args, start=1))
    agi_start = data[start:env_end + 3] + extra + data[env_end + 3:]
    steps = [*script.steps[:-1], *([Send(data[:start].encode("utf-8"), t=last.t)] if start else [])]
    return Script(steps), agi_start.encode("utf-8")


async def replay_call(script, settings: Settings, pool: asyncpg.Pool, linkedid: str, emulator=None):
    """Play one captured call through the bridge until the call has ended and
    everything about it is in PostgreSQL; returns its call_outcomes row."""
    async with AmiStandIn([script], emulator=emulator) as server:
        async with bridge_on(server, settings, pool) as bridge:
            call = await ended_call(pool, linkedid)
            await bridge.settle()
    return call


QUEUE_ADD_8006 = {"Action": "QueueAdd", "Queue": "social_security", "Interface": "PJSIP/8006",
                  "Penalty": "0", "Paused": "false", "MemberName": "坐席8006"}


async def bearer(pool: asyncpg.Pool, role: str = "supervisor") -> dict[str, str]:
    """Headers with a fresh API token of ``role``, made as ``hotline tokens create`` does."""
    from hotline.auth import tokens
    from hotline.auth.roles import Role

    async with pool.acquire() as conn:
        _, token = await tokens.create(conn, f"test {role}", Role(role), "test")
    return {"Authorization": f"Bearer {token}"}

"""The agents' console against the Asterisk stand-in and a real PostgreSQL: the
whole service on an HTTP port (aiohttp's TestServer), people logged in through
the real login form, their consoles' WebSockets."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Callable

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import CORE, create_app
from hotline.core import Core
from hotline.settings import Settings
from ivr.menu.setup import VOICE_LISTENER
from tests.conftest import ASTERISK_FIXTURES
from tests.bridge_harness import menu_call_script
from tests.standin import AmiStandIn, Emulator, Transcript
from tests.web_harness import csrf_of, fast, submit_login

MENU = Transcript.load(ASTERISK_FIXTURES / "call-menu-queue-answered.jsonl")
MENU_CALL = "1795313795.0"           # capture 2's call: 王小明 <13800138000>, answered by 8006
CALLER = "13800138000"


def console_settings(settings: Settings, **console: Any) -> Settings:
    """Fast password hashing; the console's settings overridden."""
    return fast(settings).with_overrides(console=console) if console else fast(settings)


def menu_script():
    """Capture 2 without the recorder's own menu commands: our keypad menu sends
    its own (answered by the emulated caller) until it queues the caller
    (tests.bridge_harness.menu_call_script)."""
    return menu_call_script()


@dataclass
class Rig:
    ami: AmiStandIn
    http: TestServer
    app: web.Application

    @property
    def core(self) -> Core:
        return self.app[CORE]


@asynccontextmanager
async def console_on(settings: Settings, db: asyncpg.Pool, scripts=(), emulator: Emulator | None = None,
                     listener=None, **ami_options: Any) -> AsyncIterator[Rig]:
    """The service (AMI to the stand-in, HTTP on a local port) with no agent in
    any queue until one logs in from a console."""
    async with AmiStandIn(list(scripts), emulator=emulator or Emulator(members=[]), **ami_options) as ami:
        app = create_app(settings.with_overrides(ami={"port": ami.port}), pool=db,
                         provide={VOICE_LISTENER: listener} if listener is not None else None)
        async with TestServer(app) as http:
            await app[CORE].ami.wait_logged_in(timeout=5)
            yield Rig(ami, http, app)


@asynccontextmanager
async def person(rig_or_server: Rig | TestServer, login: str) -> AsyncIterator[tuple[TestClient, str]]:
    """A browser-like client logged in as ``login``; yields it and its CSRF token."""
    server = rig_or_server.http if isinstance(rig_or_server, Rig) else rig_or_server
    client = TestClient(server)
    await client.start_server()
    try:
        response = await submit_login(client, login)
        assert response.status == 303, (response.status, await response.text())
        page = await client.get("/console")
        assert page.status in (200, 409), await page.text()     # 409: an account without an extension
        yield client, csrf_of(await page.text())
    finally:
        # TestClient.close would close the shared server too.
        await client.session.close()


async def post(client: TestClient, csrf: str, path: str, body: dict | None = None):
    response = await client.post(path, json=body or {}, headers={"X-CSRF-Token": csrf})
    return response.status, await response.json()


class Console:
    """A console's WebSocket as the page uses it: every message kept, in order."""

    def __init__(self, socket):
        self.socket = socket
        self.messages: list[dict] = []

    async def next(self, kind: str, where: Callable[[dict], bool] = lambda m: True, timeout: float = 5.0) -> dict:
        """The next message of ``kind`` matching ``where``; it and the earlier
        messages of that kind are taken (the other kinds' stay)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for index, message in enumerate(self.messages):
                if message["type"] == kind and where(message):
                    self.messages = [m for i, m in enumerate(self.messages) if i > index or m["type"] != kind]
                    return message
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {kind} message; got {[m['type'] for m in self.messages]}")
            frame = await self.socket.receive(timeout=left)
            if frame.type.name != "TEXT":
                raise AssertionError(f"the console closed: {frame}")
            self.messages.append(json.loads(frame.data))

    async def state(self, state: str, timeout: float = 5.0) -> dict:
        return await self.next("state", lambda m: m["agent"]["state"] == state, timeout)


@asynccontextmanager
async def console_socket(client: TestClient) -> AsyncIterator[Console]:
    socket = await client.ws_connect("/ws/console")
    try:
        yield Console(socket)
    finally:
        await socket.close()


async def earlier_calls(db: asyncpg.Pool, number: str = CALLER) -> None:
    """Three earlier calls of the same caller: 5 days ago (answered, disposed as
    unresolved), 30 days ago (abandoned), 120 days ago (too old to show)."""
    now = datetime.now(timezone.utc)
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO accounts (id, login, name, extension, role, password_hash, created_by) "
                           "VALUES (900, 'zhou.li', '周丽', '8007', 'agent', 'no login', 'test')")
        for linkedid, days, extra in (
                ("1700000000.1", 5, {"agent_answered_at": 1, "agent_name": "周丽", "talk_seconds": 95}),
                ("1700000000.2", 30, {"abandoned_at": 1}),
                ("1700000000.3", 120, {"agent_answered_at": 1, "agent_name": "周丽"})):
            started = now - timedelta(days=days)
            await conn.execute(
                "INSERT INTO calls (linkedid, caller_number, started_at, department, queue, queued_at, ended_at,"
                " agent_answered_at, agent_name, talk_seconds, abandoned_at) "
                "VALUES ($1, $2, $3::timestamptz, 'social_security', 'social_security', $3, $3::timestamptz + interval '3 minutes',"
                " $4, $5, $6, $7)",
                linkedid, number, started, started if extra.get("agent_answered_at") else None,
                extra.get("agent_name"), extra.get("talk_seconds"),
                started if extra.get("abandoned_at") else None)
        await conn.execute(
            "INSERT INTO call_dispositions (linkedid, account_id, agent_interface, agent_name, outcome, note)"
            " VALUES ('1700000000.1', 900, 'PJSIP/8007', '周丽', 'unresolved', '需要社保中心回电')")


async def audit_rows(db: asyncpg.Pool, action: str) -> list[asyncpg.Record]:
    async with db.acquire() as conn:
        return await conn.fetch("SELECT * FROM audit_log WHERE action = $1 ORDER BY id", action)


# -- a call through the real spoken menu ------------------------------------------------------
#
# The test machines have only PyPI's Korean Vosk model (see tests/test_voice_menu.py): the
# caller says "국민 연금" (national pension), which the knowledge base below has as a keyword
# of its pension item; the items themselves are written in Chinese, as the console shows them.

VOICE_KNOWLEDGE = {
    "social_security": [
        {"id": "social_security.pension_record", "question": "养老保险缴费记录怎么查？",
         "answer": "养老保险缴费记录可以在人社APP或社保自助机上查询，也可以带身份证到人社窗口打印。",
         "procedure": ["登录人社APP", "进入社保查询", "选择养老保险缴费记录"],
         "materials": ["本人身份证"], "keywords": ["국민 연금", "养老保险缴费记录"]},
        {"id": "social_security.card_apply", "question": "社保卡怎么办理、补办？",
         "answer": "社保卡丢失先挂失，再到合作银行网点或人社窗口补办，一般七个工作日可领卡。",
         "procedure": ["电话或APP挂失", "到合作银行网点申请补办", "领取新卡并激活"],
         "materials": ["本人身份证", "近期一寸照片"], "keywords": ["社保卡补办"]},
        {"id": "social_security.flexible_payment", "question": "灵活就业人员怎么交社保？",
         "answer": "灵活就业人员先办理参保登记，之后每月通过税务APP或银行缴纳养老保险费。",
         "procedure": ["办理灵活就业参保登记", "选择缴费档次", "通过税务APP或银行缴费"],
         "materials": ["身份证", "银行卡"], "keywords": ["灵活就业"]},
    ],
    "tax": [
        {"id": "tax.filing", "question": "个人所得税怎么申报？", "answer": "个人所得税可以在个人所得税APP上申报。",
         "procedure": [], "materials": [], "keywords": ["세금 신고", "个税申报"]},
    ],
}
SAID = "국민 연금"


def voice_settings(settings: Settings, folder, monkeypatch) -> Settings:
    """The spoken menu with the bundled Korean test model and VOICE_KNOWLEDGE (in
    the router's folder and, seeded by the test, in PostgreSQL)."""
    from asr.engine import bundled_test_model_path
    from tests.test_voice_menu import write_knowledge, write_prompts

    knowledge = write_knowledge(folder / "knowledge", VOICE_KNOWLEDGE)
    monkeypatch.setenv("HOTLINE_KNOWLEDGE_DIR", str(knowledge))
    prompts = write_prompts(folder / "prompts", settings.voice.prompts)
    return console_settings(settings).with_overrides(
        asr={"model_path": str(bundled_test_model_path()), "model_checksums": "", "workers": 2,
             "audiosocket_port": 0, "max_audio_ahead": 600.0},
        voice={"audiosocket_address": "", "listen_grammar": "knowledge", "prompt_dir": prompts,
               "answer_timeout": 2.0, "connect_timeout": 2.0})


@asynccontextmanager
async def voice_console(settings: Settings, db: asyncpg.Pool, script=None) -> AsyncIterator[Rig]:
    """The service with its spoken menu; capture 2's caller dials in once an agent
    logs in to social_security (the capture waits for that QueueAdd) and says SAID."""
    from knowledge import store as knowledge
    from ivr.menu.voice import VoiceService
    from tests.standin import AgiCaller, AudioSocketCaller, Say
    from tests.test_voice_menu import SPEED, audio

    await knowledge.seed_from_files(db)          # the same folder the router reads (HOTLINE_KNOWLEDGE_DIR)
    voice = await VoiceService.start(settings, db)
    assert voice is not None
    caller = AudioSocketCaller([Say(audio("03-gukmin-yeongeum.wav"))], speed=SPEED)
    emulator = Emulator(members=[], agi=AgiCaller(inputs=[], audiosocket=caller))
    try:
        async with console_on(settings, db, [script or menu_script()], emulator, listener=voice.menu) as rig:
            yield rig
    finally:
        await voice.close()


def script_added_member(rig: Rig, name: str, interface: str = "PJSIP/8006", queue: str = "social_security") -> None:
    """Capture 2's QueueAdd is answered by the script, not by the emulated
    app_queue: tell the emulation what the captured one did (the agent became a
    member of social_security), so later pauses and logouts act on every queue of
    the agent as Asterisk's would."""
    from tests.standin.queues import Member

    rig.ami.emulator.queues.members[(queue, interface)] = Member(queue, interface, name, interface)

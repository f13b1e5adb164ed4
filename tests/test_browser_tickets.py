"""The ticket, report and recording pages in a real headless Chromium (Debian's
/usr/bin/chromium through Playwright) against the real service on a TCP port
and a real PostgreSQL: a supervisor moves a ticket to 处理中 from its page, the
report shows the figures of the calls the test stored, and the ticket page's
<audio> element loads a recording and fetches the part it seeks to with an
HTTP Range request."""

from __future__ import annotations

import asyncio
import hashlib
import json
import wave
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hotline.auth.roles import Role
from tests.test_browser_accounts import browser, fill_login, page  # noqa: F401 (fixtures)
from tests.web_harness import make_account

TZ = ZoneInfo("Asia/Shanghai")
RECORDED = "1795600000.1"


async def a_ticket(db, linkedid: str | None = None, subject: str = "社保断缴补缴问题") -> int:
    async with db.acquire() as conn:
        return await conn.fetchval(
            """INSERT INTO tickets (source, linkedid, caller_number, department, subject, opened_by,
                                    verify_due, answer_due)
               VALUES ('disposition', $1, '13800138000', 'social_security', $2, 'account:1:wang.fang',
                       now() + interval '2 hours', now() + interval '24 hours') RETURNING id""", linkedid, subject)


async def test_a_supervisor_moves_a_ticket_to_in_progress(page, web_settings, db):
    await make_account(db, web_settings, "zhao.ban", Role.SUPERVISOR, name="赵班长")
    ticket = await a_ticket(db)
    await fill_login(page, "zhao.ban")
    await page.wait_for_url("**/")
    await page.click("nav >> text=工单")
    await page.click(f"#tickets-table >> text=GD{ticket:08d}")
    assert await page.inner_text("#ticket-state") == "待核实"
    assert sorted(await page.eval_on_selector_all("#move-form button", "bs => bs.map(b => b.textContent)")) == \
        ["转为处理中"]
    await page.click("#move-in_progress")                 # no reason yet: the browser keeps the form
    assert await page.inner_text("#ticket-state") == "待核实"
    await page.fill("#move-reason", "已电话联系来电人，核实了断缴月份")
    await page.click("#move-in_progress")
    await page.wait_for_url(f"**/tickets/{ticket}?done=moved")
    assert await page.inner_text("#ticket-state") == "处理中"
    assert "状态已更新" in await page.inner_text("#done-message")
    timeline = await page.inner_text("#ticket-timeline")
    assert "待核实 → 处理中" in timeline and "已电话联系来电人，核实了断缴月份" in timeline
    assert sorted(await page.eval_on_selector_all("#move-form button", "bs => bs.map(b => b.textContent)")) == \
        ["转为已答复"]
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT state, verified_at FROM tickets WHERE id = $1", ticket)
        moved = await conn.fetchval("SELECT actor FROM audit_log WHERE action = 'ticket.moved'")
    assert row["state"] == "in_progress" and row["verified_at"] is not None and moved.endswith(":zhao.ban")


async def test_the_report_page_shows_the_figures_of_the_stored_calls(page, web_settings, db):
    """Four calls on 2026-11-20 (three offered: two answered, after 20 s and
    80 s, one abandoned after 30 s; one served by the voice menu) and one the
    day before, which must not count."""
    day = datetime(2026, 11, 20, 9, 0, tzinfo=TZ)
    rows = [("1795700000.1", day, 20, "answered"), ("1795700000.2", day + timedelta(hours=1), 80, "answered"),
            ("1795700000.3", day + timedelta(hours=2), 30, "abandoned"), ("1795700000.4", day + timedelta(hours=3),
                                                                           None, "menu"),
            ("1795700000.5", day - timedelta(days=1), 5, "answered")]
    async with db.acquire() as conn:
        for linkedid, at, wait, kind in rows:
            queued = at + timedelta(seconds=15) if wait is not None else None
            done = queued + timedelta(seconds=wait) if wait is not None else None
            await conn.execute(
                """INSERT INTO calls (linkedid, started_at, department, queue, queued_at, agent_answered_at,
                                      abandoned_at, hold_seconds, ended_at)
                   VALUES ($1, $2, 'tax', 'tax', $3, $4, $5, $6, $2::timestamptz + interval '10 minutes')""",
                linkedid, at, queued, done if kind == "answered" else None, done if kind == "abandoned" else None,
                wait)
        await conn.execute(
            """INSERT INTO call_events (linkedid, uniqueid, occurred_at, kind, detail, dedupe_key)
               VALUES ('1795700000.4', '1795700000.4', $1, 'voice.heard', $2::jsonb, 'heard-4')""",
            day + timedelta(hours=3, seconds=5),
            json.dumps({"transcripts": ["发票怎么开"], "item": "tax.invoice", "reaction": "played_answer"}))
    await make_account(db, web_settings, "zhao.ban", Role.SUPERVISOR)
    await fill_login(page, "zhao.ban")
    await page.wait_for_url("**/")
    await page.click("nav >> text=统计报表")
    await page.fill("#report-from", "2026-11-20")
    await page.fill("#report-to", "2026-11-20")
    await page.select_option("#report-department", "tax")
    await page.click("#report-filters button[type=submit]")
    await page.wait_for_url("**/reports?from=2026-11-20&to=2026-11-20&department=tax")

    async def figure(name: str) -> str:
        return await page.inner_text(f"#figure-{name} .value")

    assert [await figure(n) for n in ("calls", "offered", "answered", "abandoned")] == ["4", "3", "2", "1"]
    assert await figure("answer-rate") == "66.7%" and await figure("abandon-rate") == "33.3%"
    assert await figure("service-level") == "33.3%"                 # 20 s of 20, 80 and 30 s
    assert await figure("wait-mean") == "43.3 秒" and await figure("wait-longest") == "80.0 秒"
    assert await figure("wait-p90") == "70.0 秒"                     # between 30 and 80, nine tenths along
    assert await figure("self-service") == "25.0%"
    assert (await page.inner_text("#report-hot-topics tbody tr")).split("\t")[::2] == ["tax.invoice", "1"]
    assert "2026-11-20 至 2026-11-20，税务" in await page.inner_text("#report-period")


async def until(page, selector: str, predicate: str, timeout: float = 10.0) -> None:
    """Poll a predicate on an element (wait_for_function evaluates a string,
    which the pages' Content-Security-Policy rightly refuses)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await page.eval_on_selector(selector, predicate):
        assert asyncio.get_running_loop().time() < deadline, f"{selector}: {predicate} never held"
        await asyncio.sleep(0.05)


def long_recording(path: Path, seconds: int = 600) -> bytes:
    """A MixMonitor-like WAV (8 kHz, 16-bit, mono): ten minutes, 9.6 MB, a
    tone that changes every second so every part differs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = bytearray()
    for second in range(seconds):
        level = 2000 + (second % 50) * 300
        frames += b"".join(((level if (i // (4 + second % 7)) % 2 else -level) & 0xFFFF).to_bytes(2, "little")
                           for i in range(8000))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(frames))
    return path.read_bytes()


async def test_the_player_loads_a_recording_and_seeking_asks_for_a_range(page, web_settings, db):
    relative = f"2026/11/22/{RECORDED}.wav"
    body = await asyncio.to_thread(long_recording, Path(web_settings.recordings.local_dir) / relative)
    async with db.acquire() as conn:
        await conn.execute(
            """INSERT INTO calls (linkedid, caller_number, started_at, ended_at, department, queue)
               VALUES ($1, '13800138000', now() - interval '20 minutes', now() - interval '10 minutes',
                       'social_security', 'social_security')""", RECORDED)
        recording = await conn.fetchval(
            """INSERT INTO recordings (linkedid, uniqueid, asterisk_path, local_path, status, bytes,
                                       duration_seconds, sha256)
               VALUES ($1, $1, $2, $3, 'ok', $4, 600, $5) RETURNING id""", RECORDED,
            f"/var/spool/asterisk/monitor/{relative}", str(Path(web_settings.recordings.local_dir) / relative),
            len(body), hashlib.sha256(body).hexdigest())
    ticket = await a_ticket(db, RECORDED)
    await make_account(db, web_settings, "zhao.ban", Role.SUPERVISOR)
    seen: list[tuple[str | None, int]] = []

    async def answered(response) -> None:
        if response.url.endswith(f"/recordings/{recording}"):
            seen.append((await response.request.header_value("range"), response.status))
    page.on("response", answered)
    await fill_login(page, "zhao.ban")
    await page.wait_for_url("**/")
    await page.goto(f"/tickets/{ticket}")
    player = f"#recording-{recording}"
    await until(page, player, "a => a.readyState >= 1")
    assert round(await page.eval_on_selector(player, "a => a.duration")) == 600
    assert await page.eval_on_selector(player, "a => a.error") is None
    before = len(seen)
    await page.eval_on_selector(player, "a => { a.currentTime = 540; }")
    await until(page, player, "a => !a.seeking")
    deadline = asyncio.get_running_loop().time() + 10
    while not any(r and not r.startswith("bytes=0-") and status == 206 for r, status in seen[before:]):
        assert asyncio.get_running_loop().time() < deadline, f"no Range request after the seek: {seen}"
        await asyncio.sleep(0.05)
    start = next(int(r[6:].split("-")[0]) for r, status in seen[before:] if r and not r.startswith("bytes=0-"))
    assert 8_000_000 < start < len(body)                 # near 540 s of 600 (16 kB per second)
    assert abs(await page.eval_on_selector(player, "a => a.currentTime") - 540) < 1
    async with db.acquire() as conn:
        played = await conn.fetch("SELECT actor FROM audit_log WHERE action = 'recording.played'")
    assert len(played) == 1 and played[0]["actor"].endswith(":zhao.ban")

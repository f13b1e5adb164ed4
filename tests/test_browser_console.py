"""The agents' console in a real headless Chromium (Debian's /usr/bin/chromium
driven by Playwright; no browser is downloaded), against the whole service on a
TCP port: AMI from the Asterisk stand-in, the real spoken menu (Vosk), a real
PostgreSQL.

An agent's first call: log in, log in to the queues, a caller speaks to the
voice menu and is offered to the agent (screen-pop with the masked number, what
the caller said, the knowledge items), answers, searches the knowledge base,
transfers the caller, records the outcome, ends the wrap-up, pauses for lunch,
logs out of the queues and of the site. ``HOTLINE_SCREENSHOTS=<folder>`` keeps
the screenshot the README shows (docs/console.png).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import Page

from hotline.auth.roles import Role
from tests.console_harness import (CALLER, MENU, MENU_CALL, SAID, console_on, console_settings, earlier_calls, menu_script,
                                   script_added_member, voice_console, voice_settings)
from tests.standin import Send, recorded_event
from tests.standin.templates import Template
from tests.test_browser_accounts import browser, fill_login  # noqa: F401 (the browser fixture)
from tests.web_harness import make_account


async def open_page(browser, rig) -> Page:
    context = await browser.new_context(base_url=str(rig.http.make_url("/")), locale="zh-CN",
                                        viewport={"width": 1280, "height": 1500})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    return page


async def text_of(page: Page, selector: str) -> str:
    return (await page.inner_text(selector)).strip()


@pytest.mark.speech
async def test_an_agents_first_call(browser, settings, db, tmp_path, monkeypatch):
    settings = voice_settings(settings, tmp_path, monkeypatch)
    await make_account(db, settings, "wang.fang", name="王芳", extension="8006")
    await earlier_calls(db)
    # The caller stays on the line after AgentConnect until the test lets the call end.
    async with voice_console(settings, db, menu_script().until("Event: AgentConnect")) as rig:
        page = await open_page(browser, rig)
        await fill_login(page, "wang.fang")
        await page.wait_for_url("**/console")
        await page.wait_for_selector("#connection:has-text('已连接')")
        assert await text_of(page, "#state-label") == "离线"

        await page.click("#queue-login")                           # the caller dials in now
        await page.wait_for_selector("#state-label.state-idle")
        script_added_member(rig, "王芳")
        pop = page.locator("#pop")
        await pop.wait_for(state="visible", timeout=30_000)
        await page.wait_for_selector("#pop-transcript:has-text('국민 연금')", timeout=30_000)
        assert await text_of(page, "#pop-number") == "138****8000"          # masked by the server
        assert CALLER not in await page.content()
        assert await text_of(page, "#pop-name") == "王小明"
        assert await text_of(page, "#pop-transcript") == f"“{SAID}”"
        assert "social_security" in await text_of(page, "#pop-intent")
        assert await text_of(page, "#pop-item") == "养老保险缴费记录怎么查？"
        items = await page.locator("#pop-knowledge > li summary").all_inner_texts()
        assert items == ["养老保险缴费记录怎么查？", "社保卡怎么办理、补办？", "灵活就业人员怎么交社保？"]
        history = await page.locator("#pop-history tbody tr").all_inner_texts()
        assert len(history) == 2 and "未解决：需要社保中心回电" in history[0] and "排队时挂断" in history[1]
        await page.wait_for_selector("#state-label.state-in_call")
        assert await text_of(page, "#pop-phase") == "通话中"

        # Search the knowledge base during the call.
        await page.fill("#search-q", "社保卡丢了怎么补办")
        await page.click("#search-form button[type=submit]")
        await page.wait_for_selector("#search-results > li")
        assert (await page.locator("#search-results > li summary").all_inner_texts())[0] == "社保卡怎么办理、补办？"

        # Transfer the caller to the tax department's queue.
        await page.select_option("#transfer-queue", "tax")
        await page.click("#transfer-queue-go")
        await page.wait_for_selector("#action-message:has-text('已转接')")
        # Then the rest of capture 2: the agent's leg and the caller hang up, AgentComplete,
        # the phone is free again.
        await rig.ami.inject(b"".join(step.data for step in menu_script().after("Event: AgentConnect")
                                      if isinstance(step, Send)))
        await page.wait_for_selector("#state-label.state-wrap_up")
        assert await text_of(page, "#pop-phase") == "整理中"

        await page.check("#disposition-form input[value=resolved]")
        await page.fill("#disposition-note", "已告知在人社APP查询缴费记录，来电人转税务咨询个税。")
        await page.click("#disposition-save")
        await page.wait_for_selector("#disposition-message:has-text('已登记：已解决')")
        screenshots = os.environ.get("HOTLINE_SCREENSHOTS")
        await page.screenshot(path=str(Path(screenshots or tmp_path) / "console.png"), full_page=True)

        await page.click("#wrapup-done")
        await page.wait_for_selector("#state-label.state-idle")
        await page.select_option("#pause-reason", "午休")
        await page.click("#pause")
        await page.wait_for_selector("#state-label.state-paused")
        assert await text_of(page, "#state-label") == "小休" and await text_of(page, "#state-reason") == "（午休）"
        await page.click("#queue-logout")
        await page.wait_for_selector("#state-label.state-offline")
        await page.click("text=退出登录")
        await page.wait_for_url("**/login?bye=1")

    async with db.acquire() as conn:
        disposition = await conn.fetchrow("SELECT * FROM call_dispositions WHERE linkedid = $1", MENU_CALL)
        actions = [r["action"] for r in await conn.fetch(
            "SELECT action FROM audit_log WHERE actor LIKE 'account:%' ORDER BY id")]
        transferred = await conn.fetchval(
            "SELECT detail->>'destination' FROM call_events WHERE linkedid = $1 AND kind = 'call.transferred'",
            MENU_CALL)
    assert (disposition["outcome"], disposition["knowledge_item_id"]) == ("resolved", "social_security.pension_record")
    assert transferred == "tax"
    assert actions == ["login.succeeded", "console.opened", "agent.queue_login", "call.transferred", "call.disposed",
                       "agent.paused", "agent.queue_logout", "logout"]


async def test_a_supervisor_sees_the_whole_number(browser, settings, db):
    settings = console_settings(settings)
    await make_account(db, settings, "zhang.wei", Role.SUPERVISOR, name="张伟", extension="8025")
    async with console_on(settings, db) as rig:
        page = await open_page(browser, rig)
        await fill_login(page, "zhang.wei")
        await page.goto("/console")
        await page.wait_for_selector("#connection:has-text('已连接')")
        await page.click("#queue-login")
        await page.wait_for_selector("#state-label.state-idle")
        called = Template(recorded_event(MENU, "AgentCalled")).render({"Interface": "PJSIP/8025",
                                                                       "MemberName": "张伟"})
        await rig.ami.inject(called.encode())
        await page.wait_for_selector("#pop-number[data-masked=no]")
        assert await text_of(page, "#pop-number") == CALLER
        assert await text_of(page, "#state-label") == "振铃"
        assert await page.get_attribute("#pop-number", "data-masked") == "no"

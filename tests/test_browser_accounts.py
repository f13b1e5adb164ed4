"""The login and the admins' pages in a real headless Chromium (Debian's
/usr/bin/chromium driven by Playwright; no browser is downloaded), against
the real service on a TCP port and a real PostgreSQL."""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.async_api import Page, async_playwright
from yarl import URL

from hotline.auth.roles import Role
from tests.web_harness import PASSWORD, make_account

CHROMIUM = os.environ.get("HOTLINE_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
async def browser():
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: tests/run installs Debian's chromium (or set HOTLINE_CHROMIUM)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser, web_server):
    context = await browser.new_context(base_url=str(web_server.make_url("/")), locale="zh-CN")
    page = await context.new_page()
    page.set_default_timeout(10_000)
    yield page
    await context.close()


async def fill_login(page: Page, login: str, password: str = PASSWORD, go: bool = True) -> None:
    if go:
        await page.goto("/login")
    await page.fill("#login", login)
    await page.fill("#password", password)
    await page.click("#login-form button[type=submit]")


async def fill_new_account(page: Page, login: str, name: str, role: str, extension: str = "") -> None:
    await page.fill("#new-login", login)
    await page.fill("#new-name", name)
    await page.select_option("#new-role", role)
    await page.select_option("#new-extension", extension)
    await page.fill("#new-password", "a good password 1")
    await page.fill("#new-password-again", "a good password 1")


async def test_an_agent_logs_in_lands_on_the_console_and_logs_out(page, web_settings, db):
    await make_account(db, web_settings, "wang.fang", name="王芳")
    await page.goto("/admin/accounts")                 # not logged in: sent to the login page
    assert URL(page.url).path == "/login" and URL(page.url).query["next"] == "/admin/accounts"
    await fill_login(page, "wang.fang", go=False)
    await page.wait_for_url("**/admin/accounts")      # back where they were going: refused for an agent
    assert "无权访问" in await page.inner_text("#error-message")
    await page.goto("/")                                # an agent's home page is the console
    await page.wait_for_url("**/console")
    assert "坐席工作台" in await page.inner_text("h1") and "建设中" not in await page.content()
    await page.wait_for_selector("#connection:has-text('已连接')")
    cookie = next(c for c in await page.context.cookies() if c["name"] == "hotline_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie.includes('hotline_session')") is False
    await page.click("text=退出登录")
    await page.wait_for_url("**/login?bye=1")
    assert "您已安全退出" in await page.content()
    await page.goto("/")
    assert "/login" in page.url


async def test_an_agent_is_refused_a_supervisors_page(page, web_settings, db):
    """The supervisors' report typed into the address bar by an agent: the
    refusal page in Chinese with 403, and its CSV export refused as well. The
    authorisation layer logs such refusals (auth.forbidden); it does not audit them."""
    await make_account(db, web_settings, "wang.fang", name="王芳")
    await fill_login(page, "wang.fang")
    await page.wait_for_url("**/console")
    assert await page.locator("nav >> text=统计报表").count() == 0     # the menu does not offer it
    response = await page.goto("/reports")
    assert response is not None and response.status == 403
    assert await page.inner_text("#error-message") == "您的账户无权访问此页面"
    assert "错误代码 403" in await page.inner_text("main")
    assert "接通率" not in await page.content()                       # nothing of the report
    export = await page.request.get("/api/reports.csv")             # the same session's cookie
    assert export.status == 403 and await export.json() == {"error": "needs the supervisor role"}
    await page.click("text=返回首页")                                  # and back to work
    await page.wait_for_url("**/console")


async def test_a_wrong_password_shows_the_error(page, web_settings, db):
    await make_account(db, web_settings, "li.na")
    await fill_login(page, "li.na", "not my password")
    assert await page.inner_text("#login-error") == "用户名或密码错误。"
    assert await page.input_value("#login") == "li.na" and await page.input_value("#password") == ""


async def test_repeated_failures_lock_the_login(page, web_settings, db):
    await make_account(db, web_settings, "zhao.lei")
    for _ in range(web_settings.web.lockout_failures - 1):
        await fill_login(page, "zhao.lei", "not my password")
        assert "用户名或密码错误" in await page.inner_text("#login-error")
    await fill_login(page, "zhao.lei", "not my password")
    assert "已暂时锁定" in await page.inner_text("#login-error")
    await fill_login(page, "zhao.lei")                 # the right password is refused while locked
    assert "已暂时锁定" in await page.inner_text("#login-error")
    assert "/login" in page.url


async def test_an_admin_creates_an_account(page, web_settings, db):
    await make_account(db, web_settings, "admin", Role.ADMIN, name="系统管理员")
    await fill_login(page, "admin")
    await page.click("nav >> text=账户管理")
    await fill_new_account(page, "chen.jing", "陈静", "agent", "8006")
    await page.click("#create-account button[type=submit]")
    await page.wait_for_url("**/admin/accounts/*?done=created")
    assert "账户已创建" in await page.inner_text("#done-message")
    assert "social_security（0）、general_queue（1）" in await page.content()
    await page.click("text=返回账户列表")
    assert "陈静" in await page.inner_text("#accounts-table")
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT actor, address FROM audit_log WHERE action = 'account.created' "
                                  "ORDER BY id DESC LIMIT 1")
    assert row["actor"].endswith(":admin") and row["address"] == "127.0.0.1"


async def test_a_form_without_its_csrf_token_is_refused(page, web_settings, db):
    await make_account(db, web_settings, "admin", Role.ADMIN)
    await fill_login(page, "admin")
    await page.goto("/admin/accounts")
    await fill_new_account(page, "forged", "伪造", "admin")
    await page.evaluate("document.querySelector('#create-account input[name=csrf_token]').remove()")
    await page.click("#create-account button[type=submit]")
    assert "安全校验失败" in await page.inner_text("#error-message")
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM accounts WHERE login = 'forged'") == 0
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'csrf.refused'") == 1

"""Helpers for the web pages' tests: fast password hashing, accounts made as
the CLI makes them, and logging in through the real login form."""

from __future__ import annotations

import re

import asyncpg
from aiohttp.test_utils import TestClient

from agents.accounts import rules, service
from agents.accounts.store import Account
from hotline.auth.passwords import Passwords
from hotline.auth.roles import Role
from hotline.settings import Settings

PASSWORD = "correct horse 12"
# argon2id at its cheapest: the tests check behaviour, not the cost.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost": 64, "argon2_parallelism": 1}
EXTENSIONS = {Role.AGENT: "8006", Role.SUPERVISOR: "8025", Role.ADMIN: None}


def fast(settings: Settings, **web) -> Settings:
    return settings.with_overrides(web={**FAST_ARGON2, **web})


async def make_account(pool: asyncpg.Pool, settings: Settings, login: str, role: Role = Role.AGENT,
                       password: str = PASSWORD, extension: str | None = "", name: str | None = None) -> Account:
    extension = EXTENSIONS[role] if extension == "" else extension
    draft = rules.draft(settings, login, name or f"测试{login}", extension, role)
    hashed = await service.password_hash(Passwords(settings.web), password)
    async with pool.acquire() as conn:
        return await service.create(conn, draft, hashed, "test")


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} in the page"
    return match[1]


def csrf_of(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, "no CSRF token in the page"
    return match[1]


async def submit_login(client: TestClient, login: str, password: str = PASSWORD, next_path: str = "/"):
    """Fill the login form as a browser does; returns the response to the POST
    (not following the redirect)."""
    page = await client.get("/login")
    token = hidden(await page.text(), "login_token")
    return await client.post("/login", data={"login": login, "password": password, "login_token": token,
                                             "next": next_path}, allow_redirects=False)


async def log_in(client: TestClient, login: str, password: str = PASSWORD) -> str:
    """Log in; returns the session's CSRF token."""
    response = await submit_login(client, login, password)
    assert response.status == 303, (response.status, await response.text())
    landing = await client.get("/")
    assert landing.status == 200
    return csrf_of(await landing.text())

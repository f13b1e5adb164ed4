"""No caller data without authentication: every route but /healthz needs a
token of a high enough role, tokens are stored hashed and revocable, and what
was seen is in the audit log. Real HTTP, real PostgreSQL."""

from __future__ import annotations

import json
import logging

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import CORE, create_app
from hotline.auth.roles import PUBLIC, is_page, needed
from hotline.cli import main
from tests.bridge_harness import bearer

SAMPLE_PARAMS = {"linkedid": "1795313813.2", "id": "1", "change": "disable", "ticket_id": "1", "recording_id": "1",
                 "action": "move", "kind": "ticket", "task_id": "1", "how": "link"}


@pytest.fixture
async def client(settings, db):
    app = create_app(settings, bridge=False, pool=db)
    async with TestClient(TestServer(app)) as client:
        yield client


def concrete_paths(app: web.Application) -> list[tuple[str, str, object]]:
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter", "") or info.get("prefix", "")
        for name, value in SAMPLE_PARAMS.items():
            path = path.replace("{" + name + "}", value)
        if route.method != "HEAD":
            found.append((route.method, path, route.handler))
    return found


async def test_every_route_but_health_refuses_a_request_without_credentials(client):
    """The API answers 401; the people's pages send the browser to the login
    page; only /healthz, the login page and the stylesheet are open."""
    routes = concrete_paths(client.app)
    paths = {(method, path) for method, path, _ in routes}
    assert {("GET", "/api/calls"), ("GET", "/ws/events"), ("GET", "/admin/accounts"), ("POST", "/logout")} <= paths
    open_routes = {("GET", "/healthz"), ("GET", "/login"), ("POST", "/login"), ("GET", "/static")}
    for method, path, handler in routes:
        if (method, path) in open_routes:
            assert needed(handler) == PUBLIC or path == "/static", path
            continue
        response = await client.request(method, path, allow_redirects=False)
        if is_page(handler):
            assert response.status == 303, (method, path, response.status)
            assert response.headers["Location"].startswith("/login"), path
        else:
            assert response.status == 401, (method, path, response.status)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "calls" not in await response.text() and "wang" not in await response.text()
    assert (await client.get("/static/hotline.css")).status == 200


async def test_roles_are_checked_per_route(client, db):
    agent, supervisor, admin = [await bearer(db, role) for role in ("agent", "supervisor", "admin")]
    assert (await client.get("/api/calls", headers=agent)).status == 403
    assert (await client.get("/api/calls", headers=supervisor)).status == 200
    assert (await client.get("/api/calls", headers=admin)).status == 200
    assert (await client.get("/api/audit", headers=supervisor)).status == 403
    assert (await client.get("/api/audit", headers=admin)).status == 200
    assert (await client.get("/ws/events", headers=agent)).status == 403


async def test_unknown_malformed_and_revoked_tokens_are_refused(client, db):
    for header in ("Bearer hl_" + "x" * 43, "Bearer", "Basic dXNlcjpwdw==", "Bearer hl_é" + "x" * 40):
        assert (await client.get("/api/calls", headers={"Authorization": header})).status == 401, header
    auth = await bearer(db)
    assert (await client.get("/api/calls", headers=auth)).status == 200
    token = auth["Authorization"].split()[1]
    async with db.acquire() as conn:
        stored = await conn.fetchrow("SELECT id, token_sha256 FROM api_tokens ORDER BY id DESC LIMIT 1")
        assert token not in json.dumps(dict(stored)) and len(stored["token_sha256"]) == 64
        from hotline.auth import tokens
        assert await tokens.revoke(conn, stored["id"], "test")
    assert (await client.get("/api/calls", headers=auth)).status == 401


async def test_a_route_that_declares_no_role_is_refused(settings, db, caplog):
    app = create_app(settings, bridge=False, pool=db)

    async def forgotten(_request):
        return web.json_response({"caller_number": "13800000000"})

    app.router.add_get("/api/forgotten", forgotten)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/forgotten", headers=await bearer(db, "admin"))
        assert response.status == 403 and "13800000000" not in await response.text()
    assert "auth.route_undeclared" in caplog.text


async def test_what_was_seen_is_audited(client, db):
    auth = await bearer(db)
    await client.get("/api/calls?limit=5", headers=auth)
    await client.get("/api/calls/1795313813.2", headers=auth)     # no such call: nothing seen
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO calls (linkedid, started_at) VALUES ('1795313813.2', now())")
    await client.get("/api/calls/1795313813.2", headers=auth)
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT actor, action, subject, address FROM audit_log ORDER BY id")
    actions = [(r["action"], r["subject"]) for r in rows]
    assert actions == [("token.created", actions[0][1]), ("calls.listed", None), ("call.viewed", "call:1795313813.2")]
    assert rows[1]["actor"].startswith("token:") and rows[1]["actor"].endswith(":test supervisor")
    assert rows[1]["address"] == "127.0.0.1"


async def test_bad_input_gets_a_clear_400_not_a_500(client, db):
    auth = await bearer(db)
    for path in ("/api/calls/%00", "/api/calls/1795313813.2%0d%0aX", "/api/calls/" + "9" * 200 + ".1",
                 "/api/calls?limit=%EF%BC%95", "/api/calls?limit=5_0", "/api/calls?limit=-1",
                 "/api/calls?limit=99999999999999999999"):
        response = await client.get(path, headers=auth)
        assert response.status == 400, (path, response.status)
        assert "error" in await response.json()


async def test_health_is_503_not_500_while_postgresql_refuses(settings, database_url, postgres_server_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_server_url)
    try:
        app = create_app(settings, bridge=False, pool=pool)
        async with TestClient(TestServer(app)) as client:
            await app[CORE].relay.wait_listening(5)   # healthy first (the pool is small: 2)
            assert (await client.get("/healthz")).status == 200
            await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            response = await client.get("/healthz")
            assert response.status == 503
            report = await response.json()
            assert report["database"] is False and "database_error" in report
    finally:
        await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        await admin.close()
        pool.terminate()


def test_cli_tokens_create_list_revoke(database_url, monkeypatch, capsys):
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    assert main(["tokens", "create", "--name", "wallboard 2F", "--role", "supervisor"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("token 1 (supervisor)") and out[1].startswith("hl_")
    assert main(["tokens", "list"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed[0]["name"] == "wallboard 2F" and listed[0]["revoked_at"] is None
    assert out[1] not in json.dumps(listed)
    assert main(["tokens", "revoke", "1"]) == 0
    assert main(["tokens", "revoke", "1"]) == 1
    assert "no live token 1" in capsys.readouterr().out


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO)

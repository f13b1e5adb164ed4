"""People's accounts on the web side: login, sessions, CSRF, lockout, the
admins' pages and the audit log. Real HTTP (aiohttp's test server on a TCP
port), real PostgreSQL, real argon2 (at its cheapest parameters)."""

from __future__ import annotations

import re
import ssl
import subprocess
from datetime import timedelta

import pytest
from aiohttp import TCPConnector, WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from hotline.app import create_app
from hotline.auth.roles import Role
from hotline.auth.pages import LOGIN_COOKIE
from hotline.auth.sessions import COOKIE
from tests.bridge_harness import bearer
from tests.web_harness import PASSWORD, csrf_of, fast, hidden, log_in, make_account, submit_login


@pytest.fixture
def web_settings(settings):
    return fast(settings)


@pytest.fixture
async def client(web_settings, db):
    app = create_app(web_settings, bridge=False, pool=db)
    async with TestClient(TestServer(app)) as client:
        yield client


async def audit_rows(db, *actions):
    async with db.acquire() as conn:
        return await conn.fetch("SELECT * FROM audit_log WHERE action = ANY($1::text[]) ORDER BY id",
                                list(actions))


def set_cookie_header(response, name=COOKIE) -> str:
    found = [h for h in response.headers.getall("Set-Cookie", []) if h.startswith(name + "=")]
    assert found, f"no {name} cookie set"
    return found[0]


def session_cookie(client: TestClient) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value


# -- logging in ---------------------------------------------------------------------------


async def test_login_lands_on_the_role_page_with_a_strict_httponly_cookie(client, web_settings, db):
    await make_account(db, web_settings, "wang.fang")
    response = await submit_login(client, "Wang.Fang ")
    assert response.status == 303 and response.headers["Location"] == "/"
    cookie = set_cookie_header(response)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie            # plain HTTP here; see the next test for HTTPS
    landing = await client.get("/")
    html = await landing.text()
    # An agent's home page is the console.
    assert landing.status == 200 and landing.url.path == "/console"
    assert "测试wang.fang" in html and "坐席工作台" in html and "建设中" not in html and 'id="console"' in html
    assert landing.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in landing.headers["Content-Security-Policy"]
    rows = await audit_rows(db, "login.succeeded")
    assert rows[0]["actor"].startswith("account:") and rows[0]["actor"].endswith(":wang.fang")
    assert rows[0]["address"] == "127.0.0.1"


async def test_the_cookie_is_secure_over_https(web_settings, db, tmp_path):
    """``cookie_secure = "auto"``: a real TLS listener gives Secure cookies."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    await make_account(db, web_settings, "li.na")
    server = TestServer(create_app(web_settings, bridge=False, pool=db))
    await server.start_server(ssl=tls)
    async with TestClient(server, connector=TCPConnector(ssl=False)) as client:
        response = await client.get("/login")
        assert "Secure" in set_cookie_header(response, LOGIN_COOKIE)
        cookie = set_cookie_header(await submit_login(client, "li.na"))
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert (await client.get("/console", allow_redirects=False)).status == 200


async def test_a_page_without_a_session_goes_to_the_login_page_and_back(client, web_settings, db):
    await make_account(db, web_settings, "root", Role.ADMIN)
    response = await client.get("/admin/accounts?x=1", allow_redirects=False)
    location = URL(response.headers["Location"])
    assert response.status == 303 and location.path == "/login" and location.query["next"] == "/admin/accounts?x=1"
    response = await submit_login(client, "root", next_path="/admin/accounts?x=1")
    assert response.headers["Location"] == "/admin/accounts?x=1"
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        client.session.cookie_jar.clear()
        response = await submit_login(client, "root", next_path=evil)
        assert response.headers["Location"] == "/", evil


async def test_the_api_still_answers_401_json_not_a_redirect(client):
    response = await client.get("/api/calls", allow_redirects=False)
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_wrong_password_and_an_unknown_login_look_the_same(client, web_settings, db):
    await make_account(db, web_settings, "zhao.lei")
    wrong = await submit_login(client, "zhao.lei", "not the password")
    unknown = await submit_login(client, "nobody.here", "not the password")
    assert wrong.status == unknown.status == 401
    strip = lambda html: re.sub(r'value="[^"]*"', "", html)   # noqa: E731 (the typed login and form token)
    assert strip(await wrong.text()) == strip(await unknown.text())
    assert "用户名或密码错误" in await wrong.text()
    assert COOKIE not in "".join(wrong.headers.getall("Set-Cookie", []))
    rows = await audit_rows(db, "login.failed")
    assert [(r["actor"], r["subject"]) for r in rows] == [("anonymous", "login:zhao.lei"),
                                                           ("anonymous", "login:nobody.here")]
    assert '"wrong password"' in rows[0]["detail"] and '"unknown login"' in rows[1]["detail"]


async def test_a_disabled_account_cannot_log_in(client, web_settings, db):
    account = await make_account(db, web_settings, "sun.li")
    async with db.acquire() as conn:
        await conn.execute("UPDATE accounts SET disabled = true WHERE id = $1", account.id)
    response = await submit_login(client, "sun.li")
    assert response.status == 401 and "用户名或密码错误" in await response.text()


async def test_the_login_form_needs_its_own_token(client, web_settings, db):
    """Login CSRF: another site cannot post the form (no cookie, no token)."""
    await make_account(db, web_settings, "qian.yu")
    response = await client.post("/login", data={"login": "qian.yu", "password": PASSWORD},
                                 allow_redirects=False)
    assert response.status == 403 and COOKIE not in "".join(response.headers.getall("Set-Cookie", []))
    await client.get("/login")   # the cookie is set, but the form field is missing
    response = await client.post("/login", data={"login": "qian.yu", "password": PASSWORD, "login_token": "x" * 32},
                                 allow_redirects=False)
    assert response.status == 403


# -- sessions ------------------------------------------------------------------------------


async def test_login_rotates_the_session_and_logout_deletes_it(client, web_settings, db):
    await make_account(db, web_settings, "zhou.jie")
    planted = "p" * 43                  # a session id fixed before login is not adopted
    client.session.cookie_jar.update_cookies({COOKIE: planted})
    await log_in(client, "zhou.jie")
    first = session_cookie(client)
    assert first != planted
    # Logging in again with a live session (the form fetched without it) replaces it.
    client.session.cookie_jar.clear()
    token = hidden(await (await client.get("/login")).text(), "login_token")
    client.session.cookie_jar.update_cookies({COOKIE: first})
    response = await client.post("/login", data={"login": "zhou.jie", "password": PASSWORD, "login_token": token},
                                 allow_redirects=False)
    assert response.status == 303
    second = session_cookie(client)
    assert second != first
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM account_sessions") == 1   # the first one ended
    csrf = csrf_of(await (await client.get("/")).text())
    response = await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login?bye=1"
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM account_sessions") == 0
    client.session.cookie_jar.update_cookies({COOKIE: second})    # a copy of the old cookie is worthless
    assert (await client.get("/console", allow_redirects=False)).status == 303
    assert [r["actor"] for r in await audit_rows(db, "logout")] == [f"account:{1}:zhou.jie"]


async def test_sessions_end_server_side_when_expired_or_idle(client, web_settings, db):
    await make_account(db, web_settings, "wu.min")
    await log_in(client, "wu.min")
    assert (await client.get("/console", allow_redirects=False)).status == 200
    async with db.acquire() as conn:
        await conn.execute("UPDATE account_sessions SET expires_at = now() - interval '1 second'")
    assert (await client.get("/console", allow_redirects=False)).status == 303
    await log_in(client, "wu.min")
    async with db.acquire() as conn:
        await conn.execute("UPDATE account_sessions SET last_seen_at = now() - $1::interval",
                           timedelta(seconds=web_settings.web.session_idle_timeout + 1))
    assert (await client.get("/console", allow_redirects=False)).status == 303


async def test_activity_keeps_a_session_alive(client, web_settings, db):
    await make_account(db, web_settings, "xu.an")
    await log_in(client, "xu.an")
    idle = web_settings.web.session_idle_timeout
    async with db.acquire() as conn:
        await conn.execute("UPDATE account_sessions SET last_seen_at = now() - $1::interval",
                           timedelta(seconds=idle - 5))
    assert (await client.get("/console", allow_redirects=False)).status == 200     # touched: idle clock restarts
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT now() - last_seen_at < interval '5 seconds' FROM account_sessions")


async def test_sessions_are_shared_by_processes_on_one_database(web_settings, db):
    await make_account(db, web_settings, "he.ping")
    first = create_app(web_settings, bridge=False, pool=db)
    second = create_app(web_settings, bridge=False, pool=db)
    async with TestClient(TestServer(first)) as one, TestClient(TestServer(second)) as two:
        await log_in(one, "he.ping")
        value = session_cookie(one)
        two.session.cookie_jar.update_cookies({COOKIE: value})
        response = await two.get("/console", allow_redirects=False)
        assert response.status == 200 and "测试he.ping" in await response.text()


async def test_disabling_an_account_ends_its_sessions_and_a_role_change_applies_at_once(web_settings, db):
    await make_account(db, web_settings, "admin", Role.ADMIN)
    agent = await make_account(db, web_settings, "lin.feng")
    async with TestServer(create_app(web_settings, bridge=False, pool=db)) as server, \
            TestClient(server) as admin, TestClient(server) as person:
        csrf = await log_in(admin, "admin")
        await log_in(person, "lin.feng")
        assert (await person.get("/admin/accounts", allow_redirects=False)).status == 403
        response = await admin.post(f"/admin/accounts/{agent.id}/role", data={"csrf_token": csrf, "role": "admin"},
                                    allow_redirects=False)
        assert response.status == 303
        assert (await person.get("/admin/accounts", allow_redirects=False)).status == 200
        await admin.post(f"/admin/accounts/{agent.id}/role", data={"csrf_token": csrf, "role": "agent"})
        response = await admin.post(f"/admin/accounts/{agent.id}/disable", data={"csrf_token": csrf},
                                    allow_redirects=False)
        assert response.status == 303
        assert (await person.get("/console", allow_redirects=False)).status == 303
    rows = await audit_rows(db, "account.role_changed", "account.disabled")
    assert [(r["action"], r["subject"]) for r in rows] == [
        ("account.role_changed", f"account:{agent.id}"), ("account.role_changed", f"account:{agent.id}"),
        ("account.disabled", f"account:{agent.id}")]
    assert all(r["actor"].endswith(":admin") and r["address"] == "127.0.0.1" for r in rows)
    assert '"sessions_ended": 1' in rows[-1]["detail"]


# -- CSRF ------------------------------------------------------------------------------------


async def test_a_state_change_without_the_csrf_token_is_refused(client, web_settings, db):
    await make_account(db, web_settings, "admin", Role.ADMIN)
    csrf = await log_in(client, "admin")
    new = {"login": "ma.li", "name": "马丽", "role": "agent", "extension": "8011",
           "password": PASSWORD, "password_again": PASSWORD}
    for extra, headers in (({}, {}), ({"csrf_token": "x" * 43}, {}),
                           ({"csrf_token": csrf}, {"Origin": "http://evil.example"})):
        response = await client.post("/admin/accounts", data={**new, **extra}, headers=headers,
                                     allow_redirects=False)
        assert response.status == 403, extra
        assert "安全校验失败" in await response.text()
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM accounts WHERE login = 'ma.li'") == 0
    reasons = [r["detail"] for r in await audit_rows(db, "csrf.refused")]
    assert len(reasons) == 3 and "missing" in reasons[0] and "wrong" in reasons[1] and "origin" in reasons[2]
    response = await client.post("/admin/accounts", data=new, headers={"X-CSRF-Token": csrf},
                                 allow_redirects=False)
    assert response.status == 303                    # the header works too (for scripts of the pages)
    response = await client.post("/logout", allow_redirects=False)
    assert response.status == 403                    # even logging out needs it


async def test_bearer_token_clients_need_no_csrf_token(client, db):
    headers = await bearer(db, "admin")
    response = await client.post("/admin/accounts", headers=headers, allow_redirects=False, data={
        "login": "api.made", "name": "接口", "role": "admin", "password": PASSWORD, "password_again": PASSWORD})
    assert response.status == 303


# -- lockout -----------------------------------------------------------------------------------


async def test_repeated_failures_lock_a_login_for_the_window_whether_it_exists_or_not(client, web_settings, db):
    await make_account(db, web_settings, "feng.yi")
    limit = web_settings.web.lockout_failures
    for login in ("feng.yi", "ghost.user"):
        statuses = [(await submit_login(client, login, "wrong password!")).status for _ in range(limit)]
        assert statuses == [401] * (limit - 1) + [429], login
        refused = await submit_login(client, login, PASSWORD)          # the right password, too late
        assert refused.status == 429 and "已暂时锁定" in await refused.text()
    async with db.acquire() as conn:   # the window passes
        await conn.execute("UPDATE login_failures SET at = at - $1::interval",
                           timedelta(seconds=web_settings.web.lockout_window + 1))
    assert (await submit_login(client, "feng.yi")).status == 303
    locked = await audit_rows(db, "login.locked_out", "login.refused_locked")
    assert [(r["action"], r["subject"]) for r in locked] == [
        ("login.locked_out", "login:feng.yi"), ("login.refused_locked", "login:feng.yi"),
        ("login.locked_out", "login:ghost.user"), ("login.refused_locked", "login:ghost.user")]


async def test_repeated_failures_from_one_address_lock_every_login_from_it(settings, db):
    web_settings = fast(settings, lockout_failures=50, lockout_address_failures=4)
    await make_account(db, web_settings, "gao.yang")
    async with TestClient(TestServer(create_app(web_settings, bridge=False, pool=db))) as client:
        for n in range(4):
            await submit_login(client, f"guess{n}", "wrong password!")
        response = await submit_login(client, "gao.yang")
        assert response.status == 429
    rows = await audit_rows(db, "login.locked_out")
    assert '"locked_by": "address"' in rows[0]["detail"] and rows[0]["address"] == "127.0.0.1"


async def test_a_password_reset_lifts_a_lockout(client, web_settings, db):
    from hotline.cli import main  # noqa: F401  (the CLI's reset is tested below; here the service)
    from agents.accounts import service
    from hotline.auth.passwords import Passwords

    account = await make_account(db, web_settings, "tang.wei")
    for _ in range(web_settings.web.lockout_failures):
        await submit_login(client, "tang.wei", "wrong password!")
    hashed = await service.password_hash(Passwords(web_settings.web), "a new password 1")
    async with db.acquire() as conn:
        await service.reset_password(conn, account.id, hashed, "test")
    assert (await submit_login(client, "tang.wei", "a new password 1")).status == 303


# -- the admins' pages ---------------------------------------------------------------------------


async def test_admins_read_the_audit_log_page_and_nobody_else_does(web_settings, db):
    await make_account(db, web_settings, "admin", Role.ADMIN)
    await make_account(db, web_settings, "boss", Role.SUPERVISOR)
    async with TestServer(create_app(web_settings, bridge=False, pool=db)) as server, \
            TestClient(server) as admin, TestClient(server) as supervisor:
        await submit_login(admin, "admin", "wrong password!")
        await log_in(admin, "admin")
        await log_in(supervisor, "boss")
        refused = await supervisor.get("/admin/audit", allow_redirects=False)
        assert refused.status == 403 and "无权访问" in await refused.text()
        page = await admin.get("/admin/audit")
        html = await page.text()
        assert page.status == 200 and "login.failed" in html and "login:admin" in html and "127.0.0.1" in html
        assert "account.created" in html and 'href="/admin/audit"' in html
        filtered = await (await admin.get("/admin/audit?q=boss")).text()
        assert "account:2:boss" in filtered and "login:admin" not in filtered
        assert (await admin.get("/admin/audit?before=abc")).status == 200
    rows = await audit_rows(db, "audit.viewed")
    assert len(rows) == 3 and all(r["actor"] == "account:1:admin" for r in rows)


async def test_an_admin_creates_an_account_that_can_log_in(web_settings, db):
    await make_account(db, web_settings, "admin", Role.ADMIN)
    async with TestServer(create_app(web_settings, bridge=False, pool=db)) as server, \
            TestClient(server) as admin, TestClient(server) as newcomer:
        csrf = await log_in(admin, "admin")
        bad = await admin.post("/admin/accounts", data={
            "csrf_token": csrf, "login": "liu.yang", "name": "刘洋", "role": "agent", "extension": "8030",
            "password": PASSWORD, "password_again": PASSWORD})
        assert bad.status == 400 and "不在配置的分机中" in await bad.text()
        assert 'value="liu.yang"' in await bad.text()              # what was typed is kept
        created = await admin.post("/admin/accounts", allow_redirects=False, data={
            "csrf_token": csrf, "login": "liu.yang", "name": "刘洋", "role": "agent", "extension": "8013",
            "queues": "", "password": PASSWORD, "password_again": PASSWORD})
        assert created.status == 303
        detail = await (await admin.get(created.headers["Location"])).text()
        assert "账户已创建" in detail and "real_estate（0）" in detail and "general_queue（1）" in detail
        listing = await (await admin.get("/admin/accounts")).text()
        assert "liu.yang" in listing and "刘洋" in listing
        await log_in(newcomer, "liu.yang")
        assert "刘洋" in await (await newcomer.get("/")).text()
    created_rows = await audit_rows(db, "account.created")
    assert created_rows[-1]["actor"] == "account:1:admin" and created_rows[-1]["address"] == "127.0.0.1"


async def test_a_session_opens_the_live_events_socket_only_from_this_site(client, web_settings, db):
    """For the consoles to come: a browser's WebSocket rides on its session,
    and a page on another site cannot open it with the person's cookie."""
    await make_account(db, web_settings, "boss", Role.SUPERVISOR)
    await log_in(client, "boss")
    origin = f"http://{client.host}:{client.port}"
    socket = await client.ws_connect("/ws/events", headers={"Origin": origin})
    await socket.close()
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/events", headers={"Origin": "http://evil.example"})
    assert refused.value.status == 403
    rows = await audit_rows(db, "events.followed", "csrf.refused")
    assert [(r["action"], r["actor"]) for r in rows] == [("events.followed", "account:1:boss"),
                                                         ("csrf.refused", "account:1:boss")]

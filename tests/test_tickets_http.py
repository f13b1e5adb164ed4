"""The tickets' HTTP routes through the real application: roles (agents see
their own, supervisors everything), clear 4xx answers, the audit log, the
ledger as CSV and XLSX, 12345's answers and the report's dispatch share."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook

from hotline.app import create_app
from tickets.ledger import LABELS
from tests.bridge_harness import bearer
from tests.test_tickets import CALL, a_call


@pytest.fixture
async def client(settings, db):
    app = create_app(settings, bridge=False, pool=db)
    async with TestClient(TestServer(app)) as client:
        yield client


async def opened(client, headers, subject="市民咨询", **extra) -> dict:
    response = await client.post("/api/tickets", json={"subject": subject, **extra}, headers=headers)
    assert response.status == 201, await response.text()
    return (await response.json())["ticket"]


async def audit_actions(db) -> list[tuple[str, str | None]]:
    async with db.acquire() as conn:
        return [(r["action"], r["subject"]) for r in await conn.fetch("SELECT action, subject FROM audit_log "
                                                                      "WHERE action LIKE 'ticket%' ORDER BY id")]


async def test_agents_see_their_own_tickets_supervisors_all_and_roles_are_checked(client, db):
    agent, other, supervisor = await bearer(db, "agent"), await bearer(db, "agent"), await bearer(db, "supervisor")
    mine = await opened(client, agent, "路灯不亮", department="construction")
    theirs = await opened(client, other, "噪音扰民")
    assert mine["source"] == "manual" and mine["state_label"] == "待核实" and mine["opened_by"].startswith("token:")

    listed = await (await client.get("/api/tickets", headers=agent)).json()
    assert [t["id"] for t in listed["tickets"]] == [mine["id"]]
    assert (await client.get(f"/api/tickets/{theirs['id']}", headers=agent)).status == 404
    assert (await client.post(f"/api/tickets/{theirs['id']}/transition", json={"to": "处理中", "reason": "x"},
                              headers=agent)).status == 404
    shown = await client.get(f"/api/tickets/{mine['id']}", headers=agent)
    assert shown.status == 200 and (await shown.json())["timeline"][0]["kind"] == "opened"
    everything = await (await client.get("/api/tickets", headers=supervisor)).json()
    assert [t["id"] for t in everything["tickets"]] == [theirs["id"], mine["id"]]
    assert (await client.get(f"/api/tickets/{theirs['id']}", headers=supervisor)).status == 200

    for method, path in (("GET", "/api/tickets/overdue"), ("GET", "/api/tickets/ledger.csv"),
                         ("GET", "/api/tickets/ledger.xlsx"), ("GET", "/api/tickets/report"),
                         ("POST", f"/api/tickets/{mine['id']}/assign"), ("POST", f"/api/tickets/{mine['id']}/dispatch"),
                         ("POST", f"/api/tickets/{mine['id']}/knowledge"), ("POST", "/api/tickets/12345/answers")):
        assert (await client.request(method, path, json={}, headers=agent)).status == 403, path
    move = await client.post(f"/api/tickets/{mine['id']}/transition", json={"to": "已派发12345", "reason": "x"},
                             headers=agent)
    assert move.status == 403
    assert (await client.get("/api/tickets")).status == 401
    assert ("ticket.viewed", f"ticket:{mine['number']}") in await audit_actions(db)


async def test_a_disposition_and_moves_over_http_with_clear_errors(client, db):
    await a_call(db)
    agent = await bearer(db, "agent")
    first = await client.post("/api/tickets/from-disposition", headers=agent,
                              json={"linkedid": CALL, "disposition": "来电人不满意", "account_id": 7,
                                    "note": "对社保补缴答复不满意"})
    assert first.status == 201
    ticket = (await first.json())["ticket"]
    assert ticket["reason"] == "来电人不满意" and ticket["assignee_account_id"] == 7
    assert ticket["caller_number"] == "13800138000"
    again = await client.post("/api/tickets/from-disposition", headers=agent,
                              json={"linkedid": CALL, "disposition": "未解决"})
    assert again.status == 200 and (await again.json())["created"] is False
    settled = await client.post("/api/tickets/from-disposition", headers=agent,
                                json={"linkedid": CALL, "disposition": "已解决"})
    assert (await settled.json()) == {"ticket": None, "created": False}

    path = f"/api/tickets/{ticket['id']}/transition"
    illegal = await client.post(path, json={"to": "已答复", "reason": "直接答复"}, headers=agent)
    assert illegal.status == 409
    body = await illegal.json()
    assert body["state"] == "to_verify" and body["allowed"] == ["dispatched_12345", "in_progress"]
    assert "待核实 → 已答复" in body["error"]
    assert (await client.post(path, json={"to": "处理中"}, headers=agent)).status == 400
    assert (await client.post(path, json={"to": "处理完了", "reason": "x"}, headers=agent)).status == 400
    assert (await client.post(path, data=b"{not json", headers=agent)).status == 400
    assert (await client.post("/api/tickets", json={"subject": ""}, headers=agent)).status == 400
    assert (await client.post("/api/tickets", json={"subject": "x", "department": "mars"}, headers=agent)).status == 400
    moved = await client.post(path, json={"to": "in_progress", "reason": "已回电核实"}, headers=agent)
    assert moved.status == 200 and (await moved.json())["ticket"]["state_label"] == "处理中"
    assert (await client.get("/api/tickets?state=nonsense", headers=agent)).status == 400
    assert (await client.get("/api/tickets?from=2026-13-01", headers=agent)).status == 400
    actions = await audit_actions(db)
    assert actions == [("ticket.opened", f"ticket:{ticket['number']}"), ("ticket.moved", f"ticket:{ticket['number']}")]


async def test_the_ledger_as_csv_and_xlsx_with_chinese_labels_and_filters(client, db):
    agent, supervisor = await bearer(db, "agent"), await bearer(db, "supervisor")
    complaint = await opened(client, agent, "占道经营", department="complaint", caller_number="13800138000")
    await client.post(f"/api/tickets/{complaint['id']}/transition", json={"to": "处理中", "reason": "已核实"},
                      headers=agent)
    late = await opened(client, agent, "税务咨询", department="tax")
    old = await opened(client, agent, "去年的工单", department="tax")
    async with db.acquire() as conn:
        await conn.execute("UPDATE tickets SET verify_due = now() - interval '1 minute' WHERE id = $1", late["id"])
        await conn.execute("UPDATE tickets SET opened_at = opened_at - interval '400 days' WHERE id = $1", old["id"])

    response = await client.get("/api/tickets/ledger.csv?department=complaint", headers=supervisor)
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")                       # a BOM: spreadsheets read the Chinese right
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0] == list(LABELS) and len(table) == 2
    row = dict(zip(table[0], table[1]))
    assert (row["工单编号"], row["来源"], row["状态"], row["部门"]) == (complaint["number"], "人工创建", "处理中", "投诉建议")
    assert row["来电号码"] == "13800138000" and row["核实是否按时"] == "按时" and row["答复是否按时"] == "未到期"
    assert row["受理时间"][:2] == "20" and row["核实时间"] != ""

    overdue = await client.get("/api/tickets/ledger.csv?overdue=1", headers=supervisor)
    rows = list(csv.DictReader(io.StringIO((await overdue.read()).decode("utf-8-sig"))))
    assert [(r["工单编号"], r["核实是否按时"]) for r in rows] == [(late["number"], "已超期")]

    response = await client.get("/api/tickets/ledger.xlsx?state=待核实", headers=supervisor)
    assert response.status == 200
    sheet = load_workbook(io.BytesIO(await response.read())).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert sheet.title == "工单台账" and values[0] == list(LABELS)
    assert sorted(r[0] for r in values[1:]) == sorted([late["number"], old["number"]])

    since = (datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=30)).isoformat()
    recent = await client.get(f"/api/tickets/ledger.csv?from={since}&state=to_verify", headers=supervisor)
    table = list(csv.reader(io.StringIO((await recent.read()).decode("utf-8-sig"))))
    assert [r[0] for r in table[1:]] == [late["number"]]          # last year's is outside the dates
    async with db.acquire() as conn:
        exports = await conn.fetch("SELECT detail FROM audit_log WHERE action = 'tickets.ledger_exported' ORDER BY id")
    assert len(exports) == 4 and '"format": "xlsx"' in exports[2]["detail"]


async def test_dispatch_the_platforms_answers_and_the_dispatch_share_in_the_report(client, db):
    agent, supervisor = await bearer(db, "agent"), await bearer(db, "supervisor")
    tickets = [await opened(client, agent, f"工单{n}") for n in range(11)]
    for ticket in tickets[:2]:
        await client.post(f"/api/tickets/{ticket['id']}/transition", json={"to": "处理中", "reason": "已核实"},
                          headers=agent)
    first = await client.post(f"/api/tickets/{tickets[0]['id']}/dispatch", json={"reason": "跨部门事项"},
                              headers=supervisor)
    assert first.status == 200
    body = await first.json()
    assert body["ticket"]["state_label"] == "已派发12345"
    assert body["dispatch_rate"]["dispatched"] == 1 and body["dispatch_rate"]["opened"] == 11
    report = (await (await client.get("/api/tickets/report", headers=supervisor)).json())["report"]
    assert (report["opened"], report["dispatched"], report["dispatch_within_goal"]) == (11, 1, True)
    assert report["dispatch_rate"] == round(1 / 11, 4) and report["dispatch_goal"] == 0.1
    assert report["by_source"] == {"manual": 11}

    async with db.acquire() as conn:
        key = await conn.fetchval("SELECT idempotency_key FROM ticket_dispatches WHERE ticket_id = $1",
                                  tickets[0]["id"])
    answer = {"idempotency_key": key, "status": "answered", "case_id": "12345-000009", "result": "已办结"}
    replies = [await client.post("/api/tickets/12345/answers", json=answer, headers=supervisor) for _ in range(2)]
    assert [(await r.json())["duplicate"] for r in replies] == [False, True]
    unknown = await client.post("/api/tickets/12345/answers", headers=supervisor,
                                json={"idempotency_key": "no-such-key", "status": "answered"})
    assert unknown.status == 404
    shown = await (await client.get(f"/api/tickets/{tickets[0]['id']}", headers=supervisor)).json()
    assert shown["ticket"]["state"] == "answered" and shown["dispatches"][0]["external_id"] == "12345-000009"
    assert [e["kind"] for e in shown["timeline"]].count("dispatch.answered") == 1

    await client.post(f"/api/tickets/{tickets[1]['id']}/dispatch", json={"reason": "跨部门事项"}, headers=supervisor)
    report = (await (await client.get("/api/tickets/report", headers=supervisor)).json())["report"]
    assert (report["dispatched"], report["dispatch_within_goal"]) == (2, False)   # reported, never refused
    refused = await client.post(f"/api/tickets/{tickets[2]['id']}/dispatch", json={"reason": ""}, headers=supervisor)
    assert refused.status == 400

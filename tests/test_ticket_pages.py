"""The tickets' pages through the real application on a TCP port, logged in
through the real login form: who sees which tickets, the buttons the
transition table allows and nothing else, every change from a form recorded
on the ticket's timeline and in the audit log, the filters, and the linked
call with its transcript and a player for its recording."""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from typing import AsyncIterator

from aiohttp.test_utils import TestClient

from hotline.auth.roles import Role
from tickets.model import TRANSITIONS, TicketState
from tests.test_tickets import CALL, a_call
from tests.web_harness import log_in, make_account

S = TicketState


class Person:
    def __init__(self, client: TestClient, csrf: str, account_id: int):
        self.client, self.csrf, self.account_id = client, csrf, account_id

    async def page(self, path: str, status: int = 200) -> str:
        response = await self.client.get(path)
        text = await response.text()
        assert response.status == status, (path, response.status, text[:500])
        return text

    async def post_form(self, path: str, data: dict, csrf: bool = True):
        body = {**data, **({"csrf_token": self.csrf} if csrf else {})}
        return await self.client.post(path, data=body, allow_redirects=False)

    async def open_ticket(self, subject: str, **extra) -> dict:
        response = await self.client.post("/api/tickets", json={"subject": subject, **extra},
                                          headers={"X-CSRF-Token": self.csrf})
        assert response.status == 201, await response.text()
        return (await response.json())["ticket"]


@asynccontextmanager
async def person(web_server, db, settings, login: str, role: Role = Role.AGENT, **account) -> AsyncIterator[Person]:
    made = await make_account(db, settings, login, role, **account)
    async with TestClient(web_server) as client:
        yield Person(client, await log_in(client, login), made.id)


def moves_offered(html: str) -> set[str]:
    return set(re.findall(r'name="to" value="([a-z_0-9]+)"', html))


def ticket_numbers(html: str) -> list[str]:
    return re.findall(r'<a href="/tickets/\d+">(GD\d{8})</a>', html)


async def audit(db, action: str) -> list:
    async with db.acquire() as conn:
        return await conn.fetch("SELECT actor, subject, detail FROM audit_log WHERE action = $1 ORDER BY id", action)


async def test_agents_see_their_own_tickets_supervisors_every_ticket(web_server, db, web_settings):
    async with person(web_server, db, web_settings, "wang.fang", name="王芳") as wang, \
            person(web_server, db, web_settings, "li.na", name="李娜") as li, \
            person(web_server, db, web_settings, "zhao.ban", Role.SUPERVISOR, name="赵班长") as boss:
        mine = await wang.open_ticket("路灯不亮", department="construction")
        theirs = await li.open_ticket("噪音扰民")
        assert ticket_numbers(await wang.page("/tickets")) == [mine["number"]]
        assert ticket_numbers(await boss.page("/tickets")) == [theirs["number"], mine["number"]]
        refused = await wang.page(f"/tickets/{theirs['id']}", 404)
        assert "没有这个工单" in refused and theirs["subject"] not in refused
        forged = await wang.post_form(f"/tickets/{theirs['id']}/move", {"to": "in_progress", "reason": "x"})
        assert forged.status == 404

        # Assigned to 李娜 by the supervisor: now hers to see, with her name on it.
        assigned = await boss.post_form(f"/tickets/{mine['id']}/assign",
                                        {"account_id": str(li.account_id), "department": "", "reason": "李娜熟悉"})
        assert assigned.status == 303
        assert set(ticket_numbers(await li.page("/tickets"))) == {mine["number"], theirs["number"]}
        shown = await li.page(f"/tickets/{mine['id']}")
        assert "李娜（8006）" in shown and "工程建设项目审批" in shown and "分派" in shown
        # An agent cannot assign or dispatch, not even by posting the form.
        for change in ("assign", "dispatch"):
            response = await li.post_form(f"/tickets/{mine['id']}/{change}",
                                          {"account_id": str(li.account_id), "reason": "自己来"})
            assert response.status == 403 and "需要班长权限" in await response.text()
    viewed = await audit(db, "ticket.viewed")
    assert [(r["actor"].split(":")[-1], r["subject"]) for r in viewed] == [
        ("li.na", f"ticket:{mine['number']}"), ("li.na", f"ticket:{mine['number']}"),
        ("li.na", f"ticket:{mine['number']}")]     # the page, and the page again after each refusal
    assert [r["actor"].split(":")[-1] for r in await audit(db, "tickets.listed")] == ["wang.fang", "zhao.ban", "li.na"]
    assert [r["actor"].split(":")[-1] for r in await audit(db, "ticket.assigned")] == ["zhao.ban"]


async def test_the_buttons_are_the_moves_the_transition_table_allows(web_server, db, web_settings):
    async with person(web_server, db, web_settings, "zhao.ban", Role.SUPERVISOR) as boss, \
            person(web_server, db, web_settings, "wang.fang") as agent:
        ticket = await agent.open_ticket("社保补缴")
        path = f"/tickets/{ticket['id']}"
        walk = [S.IN_PROGRESS, S.ANSWERED, S.FOLLOW_UP, S.REOPENED, S.IN_PROGRESS, S.ANSWERED, S.CLOSED, S.REOPENED]
        state = S.TO_VERIFY
        for to in walk:
            for who, dispatch_allowed in ((agent, False), (boss, S.DISPATCHED in TRANSITIONS[state])):
                html = await who.page(path)
                assert moves_offered(html) == {s.value for s in TRANSITIONS[state]} - {S.DISPATCHED.value}, state
                assert ('id="dispatch-form"' in html) == dispatch_allowed, (state, who)
            response = await agent.post_form(f"{path}/move", {"to": to.value, "reason": f"转为{to.label}"})
            assert response.status == 303 and response.headers["Location"] == f"{path}?done=moved"
            state = to
        html = await boss.page(f"{path}?done=moved")
        assert "状态已更新" in html and 'id="ticket-state">重新打开<' in html
    async with db.acquire() as conn:
        moves = await conn.fetch("SELECT from_state, to_state, reason, actor FROM ticket_events "
                                 "WHERE ticket_id = $1 AND kind = 'transition' ORDER BY id", ticket["id"])
    assert [m["to_state"] for m in moves] == [s.value for s in walk]
    assert all(m["actor"].endswith(":wang.fang") for m in moves)
    assert len(await audit(db, "ticket.moved")) == len(walk)


async def test_refused_changes_say_why_and_change_nothing(web_server, db, web_settings):
    async with person(web_server, db, web_settings, "wang.fang") as agent:
        ticket = await agent.open_ticket("税务咨询")
        path = f"/tickets/{ticket['id']}"
        illegal = await agent.post_form(f"{path}/move", {"to": "closed", "reason": "直接办结"})
        assert illegal.status == 409
        text = await illegal.text()
        assert "不能转为“已办结”" in text and "可转为：处理中、已派发12345" in text
        assert "直接办结" in text                       # what was typed is kept
        no_reason = await agent.post_form(f"{path}/move", {"to": "in_progress", "reason": "  "})
        assert no_reason.status == 400 and "请填写原因" in await no_reason.text()
        by_hand = await agent.post_form(f"{path}/move", {"to": "dispatched_12345", "reason": "派出去"})
        assert by_hand.status == 403
        forged = await agent.post_form(f"{path}/move", {"to": "in_progress", "reason": "无令牌"}, csrf=False)
        assert forged.status == 403 and "安全校验失败" in await forged.text()
        empty_note = await agent.post_form(f"{path}/note", {"text": ""})
        assert empty_note.status == 400 and "请填写备注内容" in await empty_note.text()
        async with db.acquire() as conn:
            closed = await conn.fetchval(
                """INSERT INTO tickets (source, state, subject, opened_by, verify_due, answer_due, closed_at)
                   VALUES ('manual', 'closed', '已办结', $1, now(), now(), now()) RETURNING id""",
                f"account:{agent.account_id}:wang.fang")
        refused = await agent.post_form(f"/tickets/{closed}/gap", {"reason": "缺答案"})
        assert refused.status == 400 and "已办结的工单不能标记为知识库缺失" in await refused.text()
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT state FROM tickets WHERE id = $1", ticket["id"]) == "to_verify"
        assert await conn.fetchval("SELECT count(*) FROM ticket_events WHERE ticket_id = $1", ticket["id"]) == 1
    assert await audit(db, "ticket.moved") == [] and len(await audit(db, "csrf.refused")) == 1


async def test_notes_a_knowledge_gap_and_a_dispatch_from_the_page(web_server, db, web_settings):
    async with person(web_server, db, web_settings, "zhao.ban", Role.SUPERVISOR) as boss:
        ticket = await boss.open_ticket("公积金异地转移")
        path = f"/tickets/{ticket['id']}"
        assert (await boss.post_form(f"{path}/note", {"text": "已电话联系来电人，约定明天回复"})).status == 303
        assert (await boss.post_form(f"{path}/gap", {"reason": "知识库没有异地转移的办理流程"})).status == 303
        html = await boss.page(f"{path}?done=gap")
        assert "已标记为知识库缺失" in html and "知识库补充" in html and 'id="gap-form"' not in html
        assert (await boss.post_form(f"{path}/dispatch", {"reason": "需公积金中心答复"})).status == 303
        html = await boss.page(path)
        assert 'id="ticket-state">已派发12345<' in html and "派发12345记录" in html and "待发送" in html
        assert "已电话联系来电人，约定明天回复" in html
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket["id"])
        kinds = [r["kind"] for r in await conn.fetch(
            "SELECT kind FROM ticket_events WHERE ticket_id = $1 ORDER BY id", ticket["id"])]
        timers = await conn.fetchval("SELECT count(*) FROM ticket_timers WHERE ticket_id = $1 AND deadline = 'knowledge'",
                                     ticket["id"])
        dispatches = await conn.fetchval("SELECT count(*) FROM ticket_dispatches WHERE ticket_id = $1", ticket["id"])
    assert row["knowledge_gap"] and row["knowledge_due"] is not None and timers >= 1 and dispatches == 1
    assert kinds == ["opened", "note", "knowledge_gap.flagged", "transition"]
    assert [len(await audit(db, a)) for a in ("ticket.noted", "ticket.knowledge_gap_flagged", "ticket.dispatched")] \
        == [1, 1, 1]


async def test_the_list_filters_by_state_department_assignee_overdue_and_date(web_server, db, web_settings):
    async with person(web_server, db, web_settings, "zhao.ban", Role.SUPERVISOR) as boss, \
            person(web_server, db, web_settings, "li.na") as li:
        tax = await boss.open_ticket("税务咨询", department="tax")
        late = await boss.open_ticket("路灯不亮", department="construction")
        old = await boss.open_ticket("去年的工单", department="tax")
        await boss.post_form(f"/tickets/{tax['id']}/move", {"to": "in_progress", "reason": "已核实"})
        await boss.post_form(f"/tickets/{late['id']}/assign", {"account_id": str(li.account_id)})
        async with db.acquire() as conn:
            await conn.execute("UPDATE tickets SET verify_due = now() - interval '1 minute' WHERE id = $1", late["id"])
            await conn.execute("UPDATE tickets SET opened_at = now() - interval '400 days' WHERE id = $1", old["id"])
        assert ticket_numbers(await boss.page("/tickets?state=in_progress")) == [tax["number"]]
        assert ticket_numbers(await boss.page("/tickets?department=tax")) == [tax["number"], old["number"]]
        assert ticket_numbers(await boss.page(f"/tickets?assignee={li.account_id}")) == [late["number"]]
        overdue = await boss.page("/tickets?overdue=1")
        assert ticket_numbers(overdue) == [late["number"]] and "已超期" in overdue
        year_ago = await boss.page("/tickets?to=" + (await _local_date(db, "now() - interval '300 days'")))
        assert ticket_numbers(year_ago) == [old["number"]]
        recent = await boss.page("/tickets?from=" + (await _local_date(db, "now() - interval '1 day'")))
        assert set(ticket_numbers(recent)) == {tax["number"], late["number"]}
        assert "筛选条件有误" in await boss.page("/tickets?state=nonsense", 400)
        assert "筛选条件有误" in await boss.page("/tickets?from=2026-13-01", 400)


async def _local_date(db, expression: str) -> str:
    async with db.acquire() as conn:
        return await conn.fetchval(f"SELECT to_char(({expression}) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD')")


async def test_the_ticket_page_shows_its_call_transcript_and_a_player_for_the_recording(web_server, db, web_settings):
    await a_call(db)
    async with person(web_server, db, web_settings, "wang.fang") as agent:
        response = await agent.client.post(
            "/api/tickets/from-disposition", headers={"X-CSRF-Token": agent.csrf},
            json={"linkedid": CALL, "disposition": "未解决", "note": "社保断缴补缴问题"})
        ticket = (await response.json())["ticket"]
        html = await agent.page(f"/tickets/{ticket['id']}")
    async with db.acquire() as conn:
        recording = await conn.fetchval("SELECT id FROM recordings WHERE linkedid = $1", CALL)
    assert f'<audio controls preload="metadata" src="/recordings/{recording}"' in html
    assert "王小明 13800138000" in html and "人工已接听" in html
    assert "来电人说：“我想咨询社保缴费”" in html
    assert "坐席标记" in html and "社保断缴补缴问题" in html

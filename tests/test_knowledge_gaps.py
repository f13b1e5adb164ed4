"""The knowledge-base editors' side of the gap loop: unplaced questions and
知识库缺失 tickets listed as tasks with their 5-working-day deadline; linking
an existing item or writing a new one closes the task and records which item
answered it; nonsense is dismissed with a reason; every view and change is
audited. A real PostgreSQL, the real application, a supervisor logged in
through the login form."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient

from hotline.auth.roles import Role
from knowledge.store import record_unplaced, seed_from_files
from tickets.http import TICKETS
from tickets.model import Deadline
from tests.bridge_harness import bearer
from tests.test_ticket_pages import person
from tests.test_tickets import a_call

LOST = "1795500000.1"        # the menu could not place the question, nobody took the call
ANSWERED = "1795500000.2"    # a person took the call: the question stays an editor's task


@pytest.fixture
async def gaps(web_server, db):
    """A gap ticket opened the way the triggers open it, and a question without one."""
    await seed_from_files(db)
    await a_call(db, LOST, answered=False, heard="无人机怎么登记")
    first = await record_unplaced(db, "无人机怎么登记", linkedid=LOST)
    second = await record_unplaced(db, "还有航拍要不要报备", linkedid=LOST)
    await a_call(db, ANSWERED, answered=True, heard="养狗要办什么证")
    alone = await record_unplaced(db, "养狗要办什么证", linkedid=ANSWERED)
    opened = await web_server.app[TICKETS].open_for_unplaced(LOST)
    return {"ticket": opened.ticket, "questions": (first, second), "alone": alone}


def task_rows(html: str) -> list[str]:
    return re.findall(r'id="task-((?:ticket|question)-\d+)"', html)


async def audit(db, action: str) -> list:
    async with db.acquire() as conn:
        return await conn.fetch("SELECT subject, detail FROM audit_log WHERE action = $1 ORDER BY id", action)


async def test_the_tasks_are_listed_with_their_deadlines(web_server, db, web_settings, gaps):
    ticket = gaps["ticket"]
    async with person(web_server, db, web_settings, "bian.ji", Role.SUPERVISOR) as editor, \
            person(web_server, db, web_settings, "wang.fang") as agent:
        html = await editor.page("/knowledge/gaps")
        # Soonest due first: the question was kept a moment before the ticket opened.
        assert task_rows(html) == [f"question-{gaps['alone']}", f"ticket-{ticket['id']}"]
        # The ticket's two questions are one task (not listed again on their own).
        assert html.count("无人机怎么登记") == 1 and "还有航拍要不要报备" in html and "养狗要办什么证" in html
        service = web_server.app[TICKETS]
        async with db.acquire() as conn:
            kept = await conn.fetchval("SELECT created_at FROM unplaced_questions WHERE id = $1", gaps["alone"])
        for due in (ticket["knowledge_due"], service.deadlines.due(Deadline.KNOWLEDGE, kept)):
            assert due.astimezone(service.deadlines.tz).strftime("%Y-%m-%d %H:%M") in html
        assert (await agent.client.get("/knowledge/gaps", allow_redirects=False)).status == 403
        task = await editor.page(f"/knowledge/gaps/ticket/{ticket['id']}")
        assert "无人机怎么登记" in task and 'id="create-form"' in task and 'id="dismiss-form"' not in task
        assert "个工作日" in html
    assert len(await audit(db, "knowledge_gaps.viewed")) == 1
    assert [r["subject"] for r in await audit(db, "knowledge_gap.viewed")] == [f"ticket:{ticket['id']}"]


async def test_linking_an_existing_item_closes_the_ticket_and_its_questions(web_server, db, web_settings, gaps):
    ticket = gaps["ticket"]
    async with person(web_server, db, web_settings, "bian.ji", Role.SUPERVISOR) as editor:
        path = f"/knowledge/gaps/ticket/{ticket['id']}"
        missing = await editor.post_form(f"{path}/link", {"item_id": "transport.no_such_item"})
        assert missing.status == 400 and "没有编号为“transport.no_such_item”的条目" in await missing.text()
        linked = await editor.post_form(f"{path}/link", {"item_id": "transport.overview"})
        assert linked.status == 303 and linked.headers["Location"] == "/knowledge/gaps?done=answered"
        html = await editor.page("/knowledge/gaps?done=answered")
        assert "已补充答案" in html and f"ticket-{ticket['id']}" not in html
        assert (await editor.client.get(path)).status == 404          # done: no longer a task
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket["id"])
        questions = await conn.fetch("SELECT status, knowledge_item_id FROM unplaced_questions WHERE linkedid = $1",
                                     LOST)
        timers = await conn.fetchval("SELECT count(*) FROM ticket_timers WHERE ticket_id = $1 "
                                     "AND deadline = 'knowledge' AND fired_at IS NULL AND cancelled_at IS NULL",
                                     ticket["id"])
        event = await conn.fetchrow("SELECT actor, detail FROM ticket_events WHERE ticket_id = $1 "
                                    "AND kind = 'knowledge_gap.answered'", ticket["id"])
    assert row["knowledge_item_id"] == "transport.overview" and row["knowledge_done_at"] is not None
    assert [(q["status"], q["knowledge_item_id"]) for q in questions] == [("answered", "transport.overview")] * 2
    assert timers == 0 and event["actor"].endswith(":bian.ji")
    assert [r["subject"] for r in await audit(db, "ticket.knowledge_answered")] == [f"ticket:{ticket['number']}"]


async def test_a_new_item_is_checked_added_and_answers_the_question(web_server, db, web_settings, gaps):
    alone = gaps["alone"]
    path = f"/knowledge/gaps/question/{alone}"
    item = {"id": "civil_affairs.dog_licence", "department": "civil_affairs", "question": "养狗要办什么证？",
            "answer": "养犬须在犬只满三个月后到住所地派出所办理养犬登记证。",
            "keywords": "养狗，养犬登记、狗证", "procedure": "为犬只接种狂犬疫苗\n到派出所登记", "materials": "身份证"}
    async with person(web_server, db, web_settings, "bian.ji", Role.SUPERVISOR) as editor:
        bad = await editor.post_form(f"{path}/create", {**item, "id": "Dog Licence", "keywords": ""})
        text = await bad.text()
        assert bad.status == 400 and "新条目未通过校验" in text and "编号：" in text and "关键词：" in text
        assert "养狗要办什么证？" in text                                  # what was typed is kept
        taken = await editor.post_form(f"{path}/create", {**item, "id": "civil_affairs.marriage"})
        assert taken.status == 409 and "已被使用" in await taken.text()
        made = await editor.post_form(f"{path}/create", item)
        assert made.status == 303
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM knowledge_items WHERE id = 'civil_affairs.dog_licence'")
        question = await conn.fetchrow("SELECT status, knowledge_item_id FROM unplaced_questions WHERE id = $1", alone)
        marriage = await conn.fetchval("SELECT question FROM knowledge_items WHERE id = 'civil_affairs.marriage'")
        count = await conn.fetchval("SELECT count(*) FROM knowledge_items WHERE department = 'civil_affairs'")
    assert row["keywords"] == ["养狗", "养犬登记", "狗证"] and row["procedure"] == ["为犬只接种狂犬疫苗", "到派出所登记"]
    assert row["position"] == count - 1                              # last in its department
    assert (question["status"], question["knowledge_item_id"]) == ("answered", "civil_affairs.dog_licence")
    assert marriage == "结婚登记要带什么，要预约吗？"                   # never overwritten from the page
    assert [r["subject"] for r in await audit(db, "knowledge_item.created")] == ["knowledge:civil_affairs.dog_licence"]
    assert [r["subject"] for r in await audit(db, "unplaced_question.answered")] == [f"question:{alone}"]


async def test_a_question_is_dismissed_only_with_a_reason(web_server, db, web_settings, gaps):
    alone, ticket = gaps["alone"], gaps["ticket"]
    async with person(web_server, db, web_settings, "bian.ji", Role.SUPERVISOR) as editor:
        assert (await editor.post_form(f"/knowledge/gaps/question/{alone}/dismiss", {"note": ""})).status == 400
        assert (await editor.post_form(f"/knowledge/gaps/ticket/{ticket['id']}/dismiss",
                                       {"note": "不处理"})).status == 400     # a ticket's gap is answered, not dismissed
        done = await editor.post_form(f"/knowledge/gaps/question/{alone}/dismiss", {"note": "识别错误，来电人在问别人"})
        assert done.status == 303
        forged = await editor.post_form(f"/knowledge/gaps/ticket/{ticket['id']}/link",
                                        {"item_id": "transport.overview"}, csrf=False)
        assert forged.status == 403
    async with db.acquire() as conn:
        question = await conn.fetchrow("SELECT status, note FROM unplaced_questions WHERE id = $1", alone)
        still_open = await conn.fetchval("SELECT knowledge_done_at IS NULL FROM tickets WHERE id = $1", ticket["id"])
    assert (question["status"], question["note"]) == ("dismissed", "识别错误，来电人在问别人") and still_open


async def test_answering_a_question_a_gap_ticket_now_covers_closes_that_ticket(web_server, db, web_settings, gaps):
    """The editor opened the question's page before the call's ticket was
    flagged 知识库缺失: the answer closes the ticket too."""
    alone = gaps["alone"]
    async with db.acquire() as conn:
        ticket_id = await conn.fetchval(
            """INSERT INTO tickets (source, linkedid, subject, opened_by, verify_due, answer_due)
               VALUES ('disposition', $1, '养狗办证', 'test', now(), now()) RETURNING id""", ANSWERED)
    async with person(web_server, db, web_settings, "bian.ji", Role.SUPERVISOR) as editor:
        assert 'id="dismiss-form"' in await editor.page(f"/knowledge/gaps/question/{alone}")
        await web_server.app[TICKETS].flag_knowledge_gap(ticket_id, "test", "知识库没有养犬登记")
        assert (await editor.post_form(f"/knowledge/gaps/question/{alone}/link",
                                       {"item_id": "civil_affairs.overview"})).status == 303
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT knowledge_item_id, knowledge_done_at FROM tickets WHERE id = $1", ticket_id)
        status = await conn.fetchval("SELECT status FROM unplaced_questions WHERE id = $1", alone)
    assert row["knowledge_item_id"] == "civil_affairs.overview" and row["knowledge_done_at"] and status == "answered"


async def test_the_api_refuses_an_item_that_does_not_exist(web_server, db, gaps):
    async with TestClient(web_server) as client:
        response = await client.post(f"/api/tickets/{gaps['ticket']['id']}/knowledge",
                                     json={"knowledge_item_id": "nothing.here"}, headers=await bearer(db))
        assert response.status == 400 and "no knowledge item" in (await response.json())["error"]

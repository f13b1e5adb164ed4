"""Tickets on a real PostgreSQL: opening from a call (disposition, survey, a
question nobody placed), the moves and their timeline, nothing deleted, the
timers (two workers racing, reminder and escalation in real time), assignment
published to the consoles of this and another process."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
import pytest

from hotline.hub import TOPIC_TICKETS, EventHub
from hotline.notify import NotifyRelay
from tickets import store
from tickets.calendar import calendar_from
from tickets.model import IllegalTransition, TicketSource, TicketState
from tickets.service import NewTicket, TicketInputError, TicketService
from tickets.events import TicketTriggers
from tickets.timers import TimerWorker
from tests.bridge_harness import eventually
from tests.web_harness import fast, make_account

S = TicketState
CALL = "1795313795.0"
AGENT = "token:3:坐席8006"


async def a_call(db, linkedid: str = CALL, *, answered: bool = True, heard: str | None = "我想咨询社保缴费",
                 recorded: bool = True) -> None:
    """A finished call as the call writer stores it, with what the voice menu heard
    and its recording."""
    async with db.acquire() as conn:
        await conn.execute(
            """INSERT INTO calls (linkedid, caller_number, caller_name, started_at, department, queue,
                                  agent_interface, agent_answered_at, ended_at)
               VALUES ($1, '13800138000', '王小明', now() - interval '5 minutes', 'social_security',
                       'social_security', CASE WHEN $2 THEN 'PJSIP/8006' END,
                       CASE WHEN $2 THEN now() - interval '4 minutes' END, now())""", linkedid, answered)
        if heard:
            await conn.execute(
                """INSERT INTO call_events (linkedid, uniqueid, occurred_at, kind, detail, dedupe_key)
                   VALUES ($1, $1, now() - interval '5 minutes', 'voice.heard', $2::jsonb, $3)""",
                linkedid, json.dumps({"transcripts": [heard], "reaction": "routed"}, ensure_ascii=False),
                f"heard-{linkedid}")
        if recorded:
            await conn.execute(
                """INSERT INTO recordings (linkedid, uniqueid, asterisk_path, local_path, status, bytes)
                   VALUES ($1, $1, $2, $2, 'ok', 64044)""", linkedid,
                f"/var/spool/asterisk/monitor/2026/11/22/{linkedid}.wav")


@pytest.fixture
def hub() -> EventHub:
    return EventHub()


@pytest.fixture
def service(settings, db, hub) -> TicketService:
    return TicketService(settings, lambda: db, hub, calendar_from(settings.tickets.calendar))


async def timeline(db, ticket_id: int) -> list[dict]:
    async with db.acquire() as conn:
        return await store.events(conn, ticket_id)


async def test_a_disposition_opens_a_ticket_linked_to_its_call_recording_and_transcript(service, db):
    await a_call(db)
    opened = await service.open_from_disposition(CALL, "未解决", AGENT, account_id=7, note="社保断缴补缴问题")
    assert opened is not None and opened.created
    ticket = opened.ticket
    assert ticket["number"] == f"GD{ticket['id']:08d}"
    assert ticket["source"] == "disposition" and ticket["state"] == "to_verify" and ticket["reason"] == "未解决"
    assert ticket["caller_number"] == "13800138000" and ticket["department"] == "social_security"
    assert ticket["assignee_account_id"] == 7 and ticket["subject"] == "社保断缴补缴问题"
    assert ticket["verify_due"] - ticket["opened_at"] == timedelta(hours=2)
    assert ticket["answer_due"] - ticket["opened_at"] == timedelta(hours=24)
    assert ticket["knowledge_due"] is None

    view = await service.view(ticket["id"])
    assert view["call"]["linkedid"] == CALL and view["call"]["outcome"] == "answered"
    assert [r["asterisk_path"] for r in view["recordings"]] == [
        f"/var/spool/asterisk/monitor/2026/11/22/{CALL}.wav"]
    assert view["transcript"][0]["transcripts"] == ["我想咨询社保缴费"]
    assert [(e["kind"], e["actor"], e["to_state"]) for e in view["timeline"]] == [("opened", AGENT, "to_verify")]
    async with db.acquire() as conn:
        timers = await conn.fetch("SELECT deadline, action, due_at - $2::timestamptz AS after FROM ticket_timers "
                                  "WHERE ticket_id = $1 ORDER BY due_at", ticket["id"], ticket["opened_at"])
    assert [(t["deadline"], t["action"], t["after"]) for t in timers] == [
        ("verify", "remind", timedelta(minutes=90)), ("verify", "escalate", timedelta(hours=2)),
        ("answer", "remind", timedelta(hours=20)), ("answer", "escalate", timedelta(hours=24))]

    again = await service.open_from_disposition(CALL, "来电人不满意", AGENT)
    assert again is not None and not again.created and again.ticket["id"] == ticket["id"]
    assert await service.open_from_disposition(CALL, "已解决", AGENT) is None


async def test_a_stored_disposition_whose_ticket_was_never_opened_gets_it_at_the_next_start(settings, service, db):
    """The console stored 来电人不满意 but the process stopped before the hub's
    subscriber opened the ticket: the start-up catch-up opens it from the stored
    row (its note and agent), once; a call marked 已解决 gets none."""
    account = await make_account(db, fast(settings), "zhou.li", extension="8006")
    await a_call(db)
    await a_call(db, "1795313999.5")
    async with db.acquire() as conn:
        for linkedid, outcome, note in ((CALL, "unsatisfied", "对补办时限不满意"),
                                        ("1795313999.5", "resolved", "已告知办理流程")):
            await conn.execute(
                """INSERT INTO call_dispositions (linkedid, uniqueid, account_id, agent_interface, agent_name,
                                                  outcome, note, updated_at)
                   VALUES ($1, $1, $2, 'PJSIP/8006', '周丽', $3, $4, clock_timestamp())""",
                linkedid, account.id, outcome, note)
    triggers = TicketTriggers(service)
    assert await triggers.reconcile() == 1
    assert await triggers.reconcile() == 0
    async with db.acquire() as conn:
        tickets = await conn.fetch("SELECT linkedid, source, reason, assignee_account_id, description FROM tickets")
    assert [tuple(t) for t in tickets] == [(CALL, "disposition", "来电人不满意", account.id, "对补办时限不满意")]


async def test_moves_follow_the_table_and_each_is_a_timeline_row_with_who_and_why(service, db):
    await a_call(db)
    ticket = (await service.open(NewTicket(TicketSource.MANUAL, "咨询公积金提取", linkedid=CALL), AGENT)).ticket
    tid = ticket["id"]
    with pytest.raises(IllegalTransition):
        await service.transition(tid, S.ANSWERED, AGENT, "跳过核实")
    with pytest.raises(TicketInputError):
        await service.transition(tid, S.IN_PROGRESS, AGENT, "  ")
    moved = await service.transition(tid, S.IN_PROGRESS, AGENT, "已电话联系来电人核实")
    assert moved["verified_at"] is not None
    moved = await service.transition(tid, S.ANSWERED, AGENT, "已告知办理流程")
    assert moved["answered_at"] is not None
    await service.transition(tid, S.FOLLOW_UP, "system:survey", "回访")
    closed = await service.transition(tid, S.CLOSED, AGENT, "来电人满意")
    assert closed["closed_at"] is not None
    with pytest.raises(IllegalTransition):
        await service.transition(tid, S.IN_PROGRESS, AGENT, "再处理")
    reopened = await service.transition(tid, S.REOPENED, "token:1:班长", "来电人再次来电")
    assert reopened["reopened_count"] == 1 and reopened["verified_at"] is None and reopened["closed_at"] is None
    assert reopened["verify_due"] > ticket["verify_due"]

    rows = await timeline(db, tid)
    assert [(r["kind"], r["from_state"], r["to_state"], r["actor"], r["reason"]) for r in rows] == [
        ("opened", None, "to_verify", AGENT, None),
        ("transition", "to_verify", "in_progress", AGENT, "已电话联系来电人核实"),
        ("transition", "in_progress", "answered", AGENT, "已告知办理流程"),
        ("follow_up.scheduled", None, None, "system:survey", None),      # the 回访 call, an hour on
        ("transition", "answered", "follow_up", "system:survey", "回访"),
        ("transition", "follow_up", "closed", AGENT, "来电人满意"),
        ("transition", "closed", "reopened", "token:1:班长", "来电人再次来电"),
    ]
    assert all(r["at"] is not None for r in rows)
    assert rows[-1]["detail"]["previous"]["answered_at"] is not None   # the old round is kept
    # The refused moves left no row and changed nothing.
    async with db.acquire() as conn:
        pending = await conn.fetch("SELECT deadline FROM ticket_timers WHERE ticket_id = $1 AND fired_at IS NULL "
                                   "AND cancelled_at IS NULL AND action = 'escalate' ORDER BY deadline", tid)
    assert [r["deadline"] for r in pending] == ["answer", "verify"]      # the new round's clock runs
    async with db.acquire() as conn:
        calls = await conn.fetch("SELECT purpose, state FROM ticket_calls WHERE ticket_id = $1", tid)
    assert [tuple(c) for c in calls] == [("follow_up", "cancelled")]     # closed first: no 回访 call


async def test_nothing_is_ever_deleted(service, db):
    ticket = (await service.open(NewTicket(TicketSource.MANUAL, "测试"), AGENT)).ticket
    async with db.acquire() as conn:
        for statement in ("DELETE FROM tickets", "DELETE FROM ticket_events", "DELETE FROM ticket_timers",
                          "UPDATE ticket_events SET reason = 'changed'", "TRUNCATE tickets CASCADE",
                          "TRUNCATE ticket_events", "DELETE FROM ticket_dispatches"):
            with pytest.raises(asyncpg.RestrictViolationError, match="never removed"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM tickets WHERE id = $1", ticket["id"]) == 1
        assert await conn.fetchval("SELECT count(*) FROM ticket_events WHERE ticket_id = $1", ticket["id"]) == 1


async def test_the_survey_answer_unsatisfied_opens_a_ticket_or_reopens_the_answered_one(service, db):
    await a_call(db)
    assert await service.open_from_survey(CALL, "满意") is None
    opened = await service.open_from_survey(CALL, "不满意")
    assert opened is not None and opened.created and opened.ticket["source"] == "survey"
    assert opened.ticket["survey_rating"] == "不满意" and opened.ticket["caller_number"] == "13800138000"
    tid = opened.ticket["id"]
    await service.transition(tid, S.IN_PROGRESS, AGENT, "已联系")
    await service.transition(tid, S.ANSWERED, AGENT, "已答复")
    again = await service.open_from_survey(CALL, "不满意")
    assert again is not None and not again.created and again.ticket["id"] == tid
    assert again.ticket["state"] == "reopened" and again.ticket["reopened_count"] == 1
    kinds = [(r["kind"], r["to_state"]) for r in await timeline(db, tid)]
    assert kinds[-2:] == [("survey", None), ("transition", "reopened")]
    with pytest.raises(TicketInputError):
        await service.open_from_survey(CALL, "很好")


async def test_an_unplaced_question_nobody_took_opens_a_knowledge_gap_ticket(service, db):
    from knowledge.store import record_unplaced

    await a_call(db, "1795313900.1", answered=False, heard="我想问一下无人机怎么登记")
    question = await record_unplaced(db, "我想问一下无人机怎么登记", linkedid="1795313900.1")
    await a_call(db, "1795313900.2", answered=True, heard=None)
    await record_unplaced(db, "宠物狗办证", linkedid="1795313900.2")     # an agent took that one
    assert await service.open_for_unplaced("1795313900.2") is None

    opened = await service.open_for_unplaced("1795313900.1")
    assert opened is not None and opened.created
    ticket = opened.ticket
    assert ticket["source"] == "unplaced_question" and ticket["knowledge_gap"] and ticket["callback"]
    assert ticket["unplaced_question_id"] == question and "无人机" in ticket["subject"]
    local = ticket["knowledge_due"].astimezone(service.deadlines.tz)
    assert (local.hour, local.minute) == (0, 0)
    assert service.deadlines.calendar.working_days_between(
        ticket["opened_at"].astimezone(service.deadlines.tz).date() + timedelta(days=1),
        local.date() - timedelta(days=1)) == 5
    # The same call again (a replay, another process): still one ticket.
    assert not (await service.open_for_unplaced("1795313900.1")).created
    # A call that first got a callback ticket has the gap added to it instead.
    await a_call(db, "1795313900.3", answered=False, heard=None)
    callback = await service.open_for_abandoned("1795313900.3", 95, "social_security")
    await record_unplaced(db, "电动车上牌", linkedid="1795313900.3")
    flagged = await service.open_for_unplaced("1795313900.3")
    assert not flagged.created and flagged.ticket["id"] == callback.ticket["id"]
    assert flagged.ticket["knowledge_gap"] and flagged.ticket["knowledge_due"] is not None

    async with db.acquire() as conn:
        await conn.execute("INSERT INTO knowledge_items (id, department, question, answer) "
                           "VALUES ('transport.drone', 'transport', '无人机怎么登记', '在民航局平台实名登记')")
    done = await service.resolve_knowledge_gap(ticket["id"], "transport.drone", "token:1:编辑")
    assert done["knowledge_done_at"] is not None and done["knowledge_item_id"] == "transport.drone"
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT status, knowledge_item_id FROM unplaced_questions WHERE id = $1", question)
        open_knowledge = await conn.fetchval(
            "SELECT count(*) FROM ticket_timers WHERE ticket_id = $1 AND deadline = 'knowledge' "
            "AND fired_at IS NULL AND cancelled_at IS NULL", ticket["id"])
    assert (row["status"], row["knowledge_item_id"]) == ("answered", "transport.drone") and open_knowledge == 0


async def test_two_workers_racing_for_the_same_timers_fire_each_exactly_once(service, db):
    tickets = [(await service.open(NewTicket(TicketSource.MANUAL, f"工单{n}"), AGENT)).ticket for n in range(40)]
    met = tickets[0]["id"]
    await service.transition(met, S.IN_PROGRESS, AGENT, "已核实")     # its verify timers are cancelled
    async with db.acquire() as conn:
        await conn.execute("UPDATE ticket_timers SET due_at = now() - interval '1 second'")
        due = await conn.fetchval("SELECT count(*) FROM ticket_timers WHERE fired_at IS NULL AND cancelled_at IS NULL")
    assert due == 40 * 4 - 2
    first, second = TimerWorker(service, 0.1, "process-a", batch=7), TimerWorker(service, 0.1, "process-b", batch=7)

    async def drain(worker: TimerWorker) -> None:
        while await worker.run_once():
            pass

    await asyncio.gather(drain(first), drain(second))
    assert first.fired > 0 and second.fired > 0, "both workers took part"
    assert first.fired + second.fired == due
    async with db.acquire() as conn:
        by_worker = dict(await conn.fetch("SELECT fired_by, count(*) FROM ticket_timers "
                                          "WHERE fired_at IS NOT NULL GROUP BY fired_by"))
        fired_rows = await conn.fetchval("SELECT count(*) FROM ticket_events WHERE kind LIKE 'deadline.%'")
        per_timer = await conn.fetchval(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM ticket_events WHERE kind LIKE 'deadline.%' "
            "GROUP BY detail->>'timer_id') AS x")
        left = await conn.fetchval("SELECT count(*) FROM ticket_timers WHERE fired_at IS NULL AND cancelled_at IS NULL")
    assert by_worker == {"process-a": first.fired, "process-b": second.fired}
    assert fired_rows == due and per_timer == 1 and left == 0


async def test_a_reminder_then_an_escalation_when_the_deadline_passes(settings, db, hub):
    fast = settings.with_overrides(tickets={"verify_hours": 1.2 / 3600, "verify_remind_minutes": 0.6 / 60,
                                            "answer_remind_minutes": 0.0, "timer_poll": 0.2})
    service = TicketService(fast, lambda: db, hub, calendar_from(fast.tickets.calendar))
    worker = TimerWorker(service, fast.tickets.timer_poll, hub.origin)
    service.on_timers.append(worker.poke)
    heard: list[dict] = []
    hub.subscribe_live(TOPIC_TICKETS, heard.append)
    worker.start()
    try:
        ticket = (await service.open(NewTicket(TicketSource.MANUAL, "市民反映路灯不亮", assignee_account_id=7),
                                     AGENT)).ticket
        await eventually(lambda: asyncio.sleep(0, [m for m in heard if m["type"] == "escalated"]), 5,
                         "the escalation")
    finally:
        await worker.close()
    kinds = [m["type"] for m in heard]
    assert kinds == ["opened", "reminder", "escalated"]
    reminder, escalated = heard[1], heard[2]
    assert reminder["account_id"] == 7 and reminder["audience"] == "assignee" and reminder["deadline"] == "verify"
    assert escalated["audience"] == "supervisors" and escalated["ticket"]["number"] == ticket["number"]
    async with db.acquire() as conn:
        fired = await conn.fetch("SELECT action, fired_at - deadline_at AS late, fired_at - due_at AS after_due "
                                 "FROM ticket_timers WHERE ticket_id = $1 AND fired_at IS NOT NULL "
                                 "ORDER BY due_at", ticket["id"])
        row = await store.ticket(conn, ticket["id"])
        overdue = await store.find_tickets(conn, overdue=True)
    assert [f["action"] for f in fired] == ["remind", "escalate"]
    assert all(timedelta(0) <= f["after_due"] < timedelta(seconds=1) for f in fired), fired
    assert row["escalated_at"] is not None
    assert [t["id"] for t in overdue] == [ticket["id"]]
    rows = await timeline(db, ticket["id"])
    assert [(r["kind"], r["actor"], r["reason"]) for r in rows][1:] == [
        ("deadline.reminder", "system:timers", "核实时限将到"),
        ("deadline.escalated", "system:timers", "核实超时，已上报班长")]


async def test_a_met_deadline_cancels_its_timers_instead_of_firing(service, db):
    ticket = (await service.open(NewTicket(TicketSource.MANUAL, "测试"), AGENT)).ticket
    async with db.acquire() as conn:
        await conn.execute("UPDATE ticket_timers SET due_at = now() - interval '1 second' WHERE deadline = 'verify'")
    # Verified after the claim query's snapshot would have seen it due: the worker skips it.
    await service.transition(ticket["id"], S.IN_PROGRESS, AGENT, "已核实")
    worker = TimerWorker(service, 0.1, "p")
    assert await worker.run_once() == 0 and worker.fired == 0
    async with db.acquire() as conn:
        cancelled = await conn.fetchval("SELECT count(*) FROM ticket_timers WHERE ticket_id = $1 "
                                        "AND deadline = 'verify' AND cancelled_at IS NOT NULL", ticket["id"])
    assert cancelled == 2


async def test_assignment_reaches_the_agents_console_in_this_and_another_process(service, db, hub):
    other = EventHub()                               # another `hotline` process on the same database
    relay = NotifyRelay(db, other)
    relay.start()
    here: list[dict] = []
    there: list[dict] = []
    hub.subscribe_live(TOPIC_TICKETS, here.append)
    other.subscribe_live(TOPIC_TICKETS, there.append)
    try:
        await relay.wait_listening(5)
        ticket = (await service.open(NewTicket(TicketSource.MANUAL, "占道经营投诉"), AGENT)).ticket
        with pytest.raises(TicketInputError):
            await service.assign(ticket["id"], "token:1:班长", department="no_such_department")
        await service.assign(ticket["id"], "token:1:班长", department="complaint", account_id=12, reason="分派")
        await eventually(lambda: asyncio.sleep(0, [m for m in there if m["type"] == "assigned"]), 5,
                         "the other process hears the assignment")
    finally:
        await relay.close()
    for heard in (here, there):
        assigned = [m for m in heard if m["type"] == "assigned"][0]
        assert assigned["topic"] == TOPIC_TICKETS and assigned["account_id"] == 12
        assert assigned["ticket"]["department"] == "complaint" and assigned["ticket"]["number"] == ticket["number"]
    rows = await timeline(db, ticket["id"])
    assert rows[-1]["kind"] == "assigned" and rows[-1]["actor"] == "token:1:班长"
    assert rows[-1]["detail"] == {"department": "complaint", "account_id": 12,
                                  "before": {"department": None, "account_id": None}}

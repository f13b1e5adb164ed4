"""The satisfaction survey after the agent hangs up (and on the 回访 call), through
the real AMI/AsyncAGI path: the stand-in starts the caller's AGI session as the
dialplan's [hotline-survey] does (AGI(agi:async,survey)), the emulated caller
presses keys, and the answer lands on the call and, for a ticket, on the ticket
in a real PostgreSQL. Whether the survey runs at all (the agent hung up, the
bridge is alive) is the dialplan's: tests/test_asterisk_config.py."""

from __future__ import annotations

import asyncpg
import pytest

from hotline.app import CORE
from tests.bridge_harness import QUEUE_ADD_8006, agi_call, app_on, eventually, timeline_detail
from tests.standin import AgiCaller, AmiStandIn, Emulator, HangUp
from tests.standin.framing import get_header
from tickets.http import TICKETS
from tickets.model import TicketSource, TicketState
from tickets.service import NewTicket

CALL = "1795313795.0"      # capture 2: caller 13800138000 on PJSIP/9000-00000000
QUESTION = "GET DATA hotline/survey 5000 1"


def agi_sent(server: AmiStandIn) -> list[str]:
    return [get_header(m, "Command") for m in server.received[0] if get_header(m, "Action") == "AGI"]


async def surveys(db: asyncpg.Pool) -> list[dict]:
    async with db.acquire() as conn:
        return [dict(r) for r in await conn.fetch("SELECT * FROM call_surveys ORDER BY id")]


async def tickets_of(db: asyncpg.Pool) -> list[dict]:
    async with db.acquire() as conn:
        return [dict(r) for r in await conn.fetch("SELECT * FROM tickets ORDER BY id")]


async def survey_with(settings, db, inputs, *args: str, before=None):
    """Run one survey session (``before(app)`` first); returns (stand-in, the stored survey rows)."""
    script, agi_start = agi_call(*(args or ("survey",)))
    emulator = Emulator(agi=AgiCaller(inputs=inputs))
    async with AmiStandIn([script], emulator=emulator) as server:
        async with app_on(server, settings, db) as app:
            if before is not None:
                await before(app)
            await app[CORE].ami.request(QUEUE_ADD_8006)      # the capture's agent logs in first
            await server.wait_script_done()
            await server.inject(agi_start)
            rows = await eventually(lambda: surveys(db), 10, "the survey to be stored")
            await eventually(lambda: timeline_detail(db, CALL, "survey.started"), 5, "the timeline")
            await app[CORE].settle()
    return server, rows


@pytest.mark.parametrize("key, rating", [("1", "满意"), ("2", "基本满意")])
async def test_a_satisfied_caller_is_thanked_and_the_answer_is_on_the_call(settings, db, key, rating):
    server, rows = await survey_with(settings, db, [key])
    assert agi_sent(server) == [QUESTION, 'STREAM FILE hotline/survey-thanks ""', "HANGUP"]
    [row] = rows
    assert (row["linkedid"], row["uniqueid"], row["kind"], row["outcome"], row["rating"], row["key"],
            row["asked"], row["ticket_id"]) == (CALL, CALL, "after_call", "rated", rating, key, 1, None)
    answered = await eventually(lambda: timeline_detail(db, CALL, "survey.answered"), 5, "the timeline row")
    assert answered == [{"kind": "after_call", "outcome": "rated", "asked": 1, "rating": rating, "key": key}]
    assert await tickets_of(db) == []                   # nothing to follow up


async def test_an_unsatisfied_caller_opens_a_ticket_with_the_2_h_and_24_h_clock(settings, db):
    server, rows = await survey_with(settings, db, ["3"])
    assert agi_sent(server) == [QUESTION, 'STREAM FILE hotline/survey-sorry ""', "HANGUP"]
    [ticket] = await eventually(lambda: tickets_of(db), 5, "the ticket")
    assert ticket["source"] == TicketSource.SURVEY.value and ticket["state"] == TicketState.TO_VERIFY.value
    assert ticket["linkedid"] == CALL and ticket["survey_rating"] == "不满意"
    assert (ticket["verify_due"] - ticket["opened_at"]).total_seconds() == 2 * 3600
    assert (ticket["answer_due"] - ticket["opened_at"]).total_seconds() == 24 * 3600
    [row] = await surveys(db)
    assert (row["rating"], row["key"], row["ticket_id"]) == ("不满意", "3", ticket["id"])
    [answered] = await timeline_detail(db, CALL, "survey.answered")
    assert answered["ticket_id"] == ticket["id"] and answered["ticket_state"] == "to_verify"


async def test_an_unsatisfied_answer_reopens_the_calls_answered_ticket(settings, db):
    async def answered_ticket(app):
        service = app[TICKETS]
        opened = await service.open(NewTicket(TicketSource.MANUAL, "咨询社保缴费", linkedid=CALL), "account:1")
        tid = opened.ticket["id"]
        await service.transition(tid, TicketState.IN_PROGRESS, "account:1", "已联系")
        await service.transition(tid, TicketState.ANSWERED, "account:1", "已答复")

    await survey_with(settings, db, ["3"], before=answered_ticket)
    [ticket] = await tickets_of(db)
    assert ticket["state"] == TicketState.REOPENED.value and ticket["reopened_count"] == 1
    assert ticket["survey_rating"] == "不满意" and ticket["verified_at"] is None
    async with db.acquire() as conn:
        kinds = [r["kind"] for r in await conn.fetch(
            "SELECT kind FROM ticket_events WHERE ticket_id = $1 ORDER BY at, id", ticket["id"])]
    assert kinds[-2:] == ["survey", "transition"]


async def test_an_invalid_key_is_asked_again(settings, db):
    server, [row] = await survey_with(settings, db, ["7", "2"])
    assert agi_sent(server)[:3] == [QUESTION, 'STREAM FILE hotline/survey-invalid ""', QUESTION]
    assert (row["outcome"], row["rating"], row["asked"]) == ("rated", "基本满意", 2)
    assert await timeline_detail(db, CALL, "survey.invalid_key") == [{"key": "7"}]


async def test_a_caller_who_presses_nothing_is_recorded_as_such(settings, db):
    server, [row] = await survey_with(settings, db, [None, None])
    assert agi_sent(server) == [QUESTION, QUESTION, 'STREAM FILE hotline/survey-thanks ""', "HANGUP"]
    assert (row["outcome"], row["rating"], row["key"], row["asked"]) == ("no_key", None, None, 2)
    assert await timeline_detail(db, CALL, "survey.no_key") == [
        {"kind": "after_call", "outcome": "no_key", "asked": 2}]


async def test_a_caller_who_hangs_up_is_recorded_as_such(settings, db):
    server, [row] = await survey_with(settings, db, [HangUp()])
    assert agi_sent(server) == [QUESTION]           # nothing is sent to a caller who has gone
    assert (row["outcome"], row["rating"], row["asked"]) == ("hung_up", None, 1)
    assert await tickets_of(db) == []


async def test_the_follow_up_call_about_an_answered_ticket_closes_it_when_satisfied(settings, db):
    """回访: the survey about ticket N on the hotline's own call (AGI(agi:async,follow_up,N))."""
    created = {}

    async def ticket_in_follow_up(app):
        service = app[TICKETS]
        opened = await service.open(NewTicket(TicketSource.MANUAL, "咨询社保缴费", caller_number="13800138000"),
                                    "account:1")
        tid = created["id"] = opened.ticket["id"]
        await service.transition(tid, TicketState.IN_PROGRESS, "account:1", "已联系")
        await service.transition(tid, TicketState.ANSWERED, "account:1", "已答复")
        await service.transition(tid, TicketState.FOLLOW_UP, "system:calls", "回访电话已接通")

    server, [row] = await survey_with(settings, db, ["1"], "follow_up", "1", before=ticket_in_follow_up)
    assert created["id"] == 1   # the ticket the dialplan named
    assert agi_sent(server) == ['STREAM FILE hotline/follow-up-intro ""', QUESTION,
                                'STREAM FILE hotline/survey-thanks ""', "HANGUP"]
    assert (row["kind"], row["rating"], row["ticket_id"]) == ("follow_up", "满意", 1)
    [ticket] = await tickets_of(db)
    assert ticket["state"] == TicketState.CLOSED.value and ticket["survey_rating"] == "满意"

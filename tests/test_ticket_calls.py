"""Callbacks and 回访 calls: AMI Originate through the stand-in and a real
PostgreSQL. The stand-in answers Originate as Asterisk 22 does ("Originate
successfully queued", then OriginateResponse: captured for an answered call,
built from main/manager.c for busy, no answer, congestion; tests/standin/originate.py).
Each attempt is a row, each result a row of the ticket's timeline; attempts are
limited and spaced; a failed Originate never loses the ticket."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from agents.accounts import store as accounts
from agents.accounts.rules import Draft, QueueSeat
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import CORE, create_app
from hotline.auth.roles import Role
from tests.bridge_harness import app_on, bearer, eventually
from tests.standin import AmiStandIn, Emulator
from tests.standin.framing import header_items
from tests.standin.originate import OriginateOutcome
from tickets.http import TICKET_CALLS, TICKETS
from tickets.model import TicketSource, TicketState
from tickets.service import NewTicket

NUMBER = "13800138000"
SPACING_MINUTES = 0.004        # 0.24 s between attempts


@pytest.fixture
def call_settings(settings):
    return settings.with_overrides(tickets={"callback_spacing_minutes": SPACING_MINUTES, "callback_attempts": 3,
                                            "timer_poll": 0.05, "callback_ring_seconds": 30,
                                            "follow_up_delay_minutes": 0})


def originates(server: AmiStandIn) -> list[list[tuple[str, str]]]:
    """Every Originate the bridge sent, header by header (Variable repeats)."""
    return [header_items(raw) for raw in server.received_raw[0] if ("Action", "Originate") in header_items(raw)]


def header(items: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in items if k == name]


async def events(db: asyncpg.Pool, ticket_id: int) -> list[dict]:
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT kind, reason, detail FROM ticket_events WHERE ticket_id = $1 ORDER BY at, id",
                                ticket_id)
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


async def calls(db: asyncpg.Pool, ticket_id: int) -> list[dict]:
    async with db.acquire() as conn:
        return [dict(r) for r in await conn.fetch("SELECT * FROM ticket_calls WHERE ticket_id = $1 ORDER BY id",
                                                  ticket_id)]


async def callback_ticket(app, **ticket) -> dict:
    new = NewTicket(TicketSource.ABANDONED, "放弃来电回拨", caller_number=NUMBER, callback=True,
                    department="social_security", **ticket)
    return (await app[TICKETS].open(new, "system:abandoned")).ticket


async def settled(db: asyncpg.Pool, ticket_id: int, count: int) -> list[dict]:
    async def check():
        rows = [c for c in await calls(db, ticket_id) if c["state"] in ("answered", "failed")]
        return rows if len(rows) >= count else None
    return await eventually(check, 10, f"{count} settled attempts")


async def called_back(settings, db, outcomes: list[OriginateOutcome], count: int, linger: float = 0.0,
                      **ticket) -> tuple[AmiStandIn, dict, list[dict]]:
    """A callback on a fresh callback ticket, Asterisk answering each Originate as
    ``outcomes`` say, until ``count`` attempts are settled (and ``linger`` seconds
    more): (the stand-in, the ticket, the attempts)."""
    async with AmiStandIn([], emulator=Emulator(originate=outcomes)) as server:
        async with app_on(server, settings, db) as app:
            opened = await callback_ticket(app, **ticket)
            await app[TICKET_CALLS].schedule_callback(opened["id"], "account:1")
            attempts = await settled(db, opened["id"], count)
            await asyncio.sleep(linger)
            await app[CORE].settle()
    return server, opened, attempts


async def test_an_answered_callback_rings_the_caller_then_the_assigned_agent(call_settings, db):
    async with db.acquire() as conn:
        agent = await accounts.insert(conn, Draft("wang.fang", "王芳", "8006", Role.AGENT,
                                                  (QueueSeat("social_security", 0),)), "not-a-hash", "test")
    server, ticket, [attempt] = await called_back(call_settings, db, [OriginateOutcome("Success", 4)], 1,
                                                   assignee_account_id=agent)
    [sent] = originates(server)
    assert header(sent, "Channel") == [f"PJSIP/{NUMBER}@carrier"]
    assert (header(sent, "Context"), header(sent, "Exten"), header(sent, "Priority")) == (
        ["hotline-callback-out"], ["s"], ["1"])
    assert header(sent, "Timeout") == ["30000"] and header(sent, "Async") == ["true"]
    assert header(sent, "CallerID") == ['"政务服务热线" <2512345>']
    assert sorted(header(sent, "Variable")) == sorted([
        f"HOTLINE_TICKET={ticket['id']}", f"HOTLINE_CALL_NUMBER={NUMBER}", "HOTLINE_AGENT=8006",
        "HOTLINE_QUEUE=social_security"])
    assert header(sent, "ActionID") == [attempt["action_id"]]
    assert (attempt["state"], attempt["result"], attempt["response"], attempt["reason_code"]) == (
        "answered", "answered", "Success", 4)
    timeline = await events(db, ticket["id"])
    assert [e["kind"] for e in timeline] == ["opened", "callback.scheduled", "callback.answered", "transition"]
    assert timeline[2]["reason"] == "回电已接通（第1次）"
    assert timeline[2]["detail"]["channel"].startswith("PJSIP/carrier-")
    async with db.acquire() as conn:
        state = await conn.fetchval("SELECT state FROM tickets WHERE id = $1", ticket["id"])
    assert state == TicketState.IN_PROGRESS.value          # the caller was reached: verified


async def test_attempts_are_spaced_limited_and_each_result_is_on_the_timeline(call_settings, db):
    outcomes = [OriginateOutcome("Failure", 5), OriginateOutcome("Failure", 3), OriginateOutcome("Failure", 8),
                OriginateOutcome("Success", 4)]
    # Lingering: a fourth attempt would be due by then.
    server, ticket, attempts = await called_back(call_settings, db, outcomes, 3, linger=SPACING_MINUTES * 60 * 2)
    assert len(originates(server)) == 3 == len(await calls(db, ticket["id"]))
    assert [(a["attempt"], a["result"], a["reason_code"]) for a in attempts] == [
        (1, "busy", 5), (2, "no_answer", 3), (3, "congestion", 8)]
    for earlier, later in zip(attempts, attempts[1:]):
        assert (later["sent_at"] - earlier["settled_at"]).total_seconds() >= SPACING_MINUTES * 60
    assert all(header(o, "Channel") == [f"PJSIP/{NUMBER}@carrier"] for o in originates(server))
    assert header(originates(server)[0], "Variable").count("HOTLINE_AGENT=") == 1    # nobody assigned: the queue
    timeline = await events(db, ticket["id"])
    assert [e["kind"] for e in timeline] == [
        "opened", "callback.scheduled", "callback.busy", "callback.retry_scheduled", "callback.no_answer",
        "callback.retry_scheduled", "callback.congestion", "callback.gave_up"]
    assert [e["reason"] for e in timeline if e["kind"] in ("callback.busy", "callback.no_answer",
                                                           "callback.congestion")] == [
        "回电忙线（第1次）", "回电无人接听（第2次）", "回电线路拥塞（第3次）"]
    assert timeline[-1]["detail"] == {"attempts": 3}
    async with db.acquire() as conn:
        ticket_now = await conn.fetchrow("SELECT state, callback FROM tickets WHERE id = $1", ticket["id"])
    assert tuple(ticket_now) == (TicketState.TO_VERIFY.value, True)      # still waiting for us


async def test_a_refused_originate_never_loses_the_ticket(call_settings, db):
    """Asterisk refuses the action (manager.conf without originate: the captured
    "Permission denied" answer): each attempt is recorded as not sent, retried,
    and the ticket stays as it was."""
    _, ticket, attempts = await called_back(call_settings, db, [OriginateOutcome(refused="Permission denied")] * 3, 3)
    assert [(a["result"], a["detail"]) for a in attempts] == [
        ("not_sent", json.dumps({"error": "Originate: Permission denied"}))] * 3
    timeline = await events(db, ticket["id"])
    assert [e["kind"] for e in timeline][-2:] == ["callback.not_sent", "callback.gave_up"]
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT state, callback, callback_number, caller_number FROM tickets WHERE id = $1",
                                  ticket["id"])
    assert tuple(row) == (TicketState.TO_VERIFY.value, True, None, NUMBER)


async def test_an_originate_that_fails_at_once_reports_before_its_answer(call_settings, db):
    """The OriginateResponse can come before "Originate successfully queued"
    (Asterisk starts the call in a thread first): the attempt is settled all the same."""
    server, _, attempts = await called_back(
        call_settings, db, [OriginateOutcome("Failure", 0, first=True), OriginateOutcome("Success", 4)], 2)
    assert [(a["result"], a["reason_code"]) for a in attempts] == [("failed", 0), ("answered", 4)]
    assert len(originates(server)) == 2


async def test_an_originate_nobody_reports_is_settled_as_lost_and_tried_again(call_settings, db):
    settings = call_settings.with_overrides(tickets={"callback_ring_seconds": 0.1, "callback_response_timeout": 0.2})
    server, _, attempts = await called_back(settings, db, [OriginateOutcome(silent=True),
                                                           OriginateOutcome("Success", 4)], 2)
    assert [a["result"] for a in attempts] == ["lost", "answered"]
    assert len(originates(server)) == 2


async def test_the_console_asks_for_a_callback_over_http(call_settings, db):
    emulator = Emulator(originate=[OriginateOutcome("Failure", 5)])
    async with AmiStandIn([], emulator=emulator) as server:
        app = create_app(call_settings.with_overrides(ami={"port": server.port}), pool=db)
        async with TestClient(TestServer(app)) as client:
            await app[CORE].ami.wait_logged_in(timeout=5)
            ticket = await callback_ticket(app)
            headers = await bearer(db)
            response = await client.post(f"/api/tickets/{ticket['id']}/callback", json={"extension": "9999"},
                                         headers=headers)
            assert response.status == 400 and "extensions" in (await response.json())["error"]
            response = await client.post(f"/api/tickets/{ticket['id']}/callback", json={"extension": "8006"},
                                         headers=headers)
            assert response.status == 202
            call = (await response.json())["call"]
            again = await client.post(f"/api/tickets/{ticket['id']}/callback", json={}, headers=headers)
            assert (await again.json())["call"]["id"] == call["id"]      # one callback at a time
            [attempt] = await settled(db, ticket["id"], 1)
    assert attempt["extension"] == "8006" and attempt["result"] == "busy"
    assert "HOTLINE_AGENT=8006" in header(originates(server)[0], "Variable")
    async with db.acquire() as conn:
        audited = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'ticket.callback_scheduled'")
    assert audited == 2


async def test_an_answered_ticket_gets_its_follow_up_call(call_settings, db):
    """回访: follow_up_delay_minutes after 已答复 the caller is called into the survey."""
    settings = call_settings.with_overrides(tickets={"follow_up_delay_minutes": 0.002})
    emulator = Emulator(originate=[OriginateOutcome("Success", 4)])
    async with AmiStandIn([], emulator=emulator) as server:
        async with app_on(server, settings, db) as app:
            service = app[TICKETS]
            ticket = (await service.open(NewTicket(TicketSource.MANUAL, "咨询社保缴费", caller_number=NUMBER),
                                         "account:1")).ticket
            await service.transition(ticket["id"], TicketState.IN_PROGRESS, "account:1", "已联系")
            await service.transition(ticket["id"], TicketState.ANSWERED, "account:1", "已答复")
            [attempt] = await settled(db, ticket["id"], 1)
            await app[CORE].settle()
    [sent] = originates(server)
    assert header(sent, "Context") == ["hotline-follow-up"] and header(sent, "Channel") == [f"PJSIP/{NUMBER}@carrier"]
    assert sorted(header(sent, "Variable")) == sorted([f"HOTLINE_TICKET={ticket['id']}",
                                                       f"HOTLINE_CALL_NUMBER={NUMBER}"])
    assert attempt["purpose"] == "follow_up" and attempt["result"] == "answered"
    kinds = [e["kind"] for e in await events(db, ticket["id"])]
    assert kinds[-3:] == ["follow_up.scheduled", "follow_up.answered", "transition"]
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT state FROM tickets WHERE id = $1", ticket["id"]) == "follow_up"


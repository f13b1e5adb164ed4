"""The queue's callback offer through the real AMI/AsyncAGI path and a real
PostgreSQL: a caller routed to a queue nobody is logged in to (app_queue's
QUEUE_MEMBER(<queue>,logged) is 0, answered by the stand-in's queues), and a
caller who pressed app_queue's exit key after the periodic offer (the dialplan's
[hotline-callback] runs AGI(agi:async,callback,<queue>)). The number is confirmed
or keyed, a callback ticket is opened with it, and the caller is told and hung
up; a caller who declines is queued."""

from __future__ import annotations

import json

import asyncpg

from hotline.app import CORE
from tests.bridge_harness import QUEUE_ADD_8006, agi_call, app_on, eventually, timeline_detail
from tests.standin import AgiCaller, AmiStandIn, Emulator, HangUp
from tests.standin.framing import get_header
from tickets.model import TicketSource

CALL = "1795313795.0"      # capture 2: caller ID 13800138000
MENU = ['STREAM FILE hotline/welcome "0123456789*#"', "GET DATA hotline/menu-main 5000 1",
        "SET VARIABLE HOTLINE_INTENT social_security", "GET VARIABLE QUEUE_MEMBER(social_security,logged)"]
OFFER = "GET DATA hotline/callback-nobody 5000 1"
CONFIRM = ['STREAM FILE hotline/callback-number ""', 'SAY DIGITS 13800138000 ""',
           "GET DATA hotline/callback-confirm 5000 1"]
REGISTERED = ['STREAM FILE hotline/callback-registered ""', "HANGUP"]
QUEUED = ['STREAM FILE hotline/callback-declined ""', "SET VARIABLE TIMEOUT(absolute) 0",
          "EXEC Queue social_security,c", "ASYNCAGI BREAK"]


def agi_sent(server: AmiStandIn) -> list[str]:
    return [get_header(m, "Command") for m in server.received[0] if get_header(m, "Action") == "AGI"]


async def tickets(db: asyncpg.Pool) -> list[dict]:
    async with db.acquire() as conn:
        return [dict(r) for r in await conn.fetch("SELECT * FROM tickets ORDER BY id")]


async def ticket_events(db: asyncpg.Pool, ticket_id: int) -> list[dict]:
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind, reason, detail FROM ticket_events WHERE ticket_id = $1 ORDER BY at, id", ticket_id)
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


async def offer_call(settings, db, inputs, *args: str, nobody: bool, done: str):
    """One caller's AGI session (the menu without ``args``, else the named script);
    ``nobody``: no agent is logged in to any queue. Waits for the timeline row ``done``."""
    script, agi_start = agi_call(*args)
    emulator = Emulator(agi=AgiCaller(inputs=inputs), members=[] if nobody else None)
    async with AmiStandIn([script], emulator=emulator) as server:
        async with app_on(server, settings, db) as app:
            # The capture's recorder added 8006 here; the script answers it, so the
            # stand-in's queues stay as given (empty when nobody is logged in).
            await app[CORE].ami.request(QUEUE_ADD_8006)
            await server.wait_script_done()
            await server.inject(agi_start)
            await eventually(lambda: timeline_detail(db, CALL, done), 10, done)
            await app[CORE].settle()
    return server


async def test_nobody_logged_in_the_caller_takes_a_callback_on_the_caller_id(settings, db):
    server = await offer_call(settings, db, ["3", "1", "1"], nobody=True, done="callback.requested")
    assert agi_sent(server) == [*MENU, OFFER, *CONFIRM, *REGISTERED]     # never queued
    [ticket] = await tickets(db)
    assert ticket["source"] == TicketSource.CALLBACK_REQUEST.value and ticket["callback"]
    assert (ticket["linkedid"], ticket["callback_number"], ticket["caller_number"], ticket["department"]) == (
        CALL, "13800138000", "13800138000", "social_security")
    assert ticket["reason"] == "无人值守时来电人请求回电"
    events = await ticket_events(db, ticket["id"])
    assert [e["kind"] for e in events] == ["opened", "callback.requested"]
    assert events[1]["detail"] == {"number": "13800138000", "confirmed": "caller_id", "reason": "nobody"}
    assert await timeline_detail(db, CALL, "menu.nobody_logged_in") == [{"queue": "social_security"}]
    [requested] = await timeline_detail(db, CALL, "callback.requested")
    assert requested["ticket"] == ticket["number"] and requested["confirmed"] == "caller_id"


async def test_the_caller_may_key_another_number(settings, db):
    server = await offer_call(settings, db, ["3", "1", "2", "13912345678", "1"], nobody=True,
                              done="callback.requested")
    sent = agi_sent(server)
    assert sent[len(MENU) + 1:] == [*CONFIRM, "GET DATA hotline/callback-enter 10000 20",
                                    'STREAM FILE hotline/callback-number ""', 'SAY DIGITS 13912345678 ""',
                                    "GET DATA hotline/callback-confirm 5000 1", *REGISTERED]
    [ticket] = await tickets(db)
    assert ticket["callback_number"] == "13912345678" and ticket["caller_number"] == "13800138000"
    events = await ticket_events(db, ticket["id"])
    assert events[-1]["detail"]["confirmed"] == "keyed"


async def test_a_number_too_short_is_not_taken(settings, db):
    server = await offer_call(settings, db, ["3", "1", "2", "12", "13912345678", "1"], nobody=True,
                              done="callback.requested")
    assert 'STREAM FILE hotline/callback-invalid ""' in agi_sent(server)
    assert await timeline_detail(db, CALL, "callback.invalid_number") == [{"digits": 2}]
    [ticket] = await tickets(db)
    assert ticket["callback_number"] == "13912345678"


async def test_a_caller_who_declines_is_queued(settings, db):
    server = await offer_call(settings, db, ["3", "2"], nobody=True, done="callback.declined")
    assert agi_sent(server) == [*MENU, OFFER, *QUEUED]
    assert await tickets(db) == []
    assert await timeline_detail(db, CALL, "callback.declined") == [{"key": "2"}]


async def test_with_an_agent_logged_in_there_is_no_offer(settings, db):
    server = await offer_call(settings, db, ["3"], nobody=False, done="menu.routed")
    assert agi_sent(server) == [*MENU, *QUEUED[1:]]
    assert await timeline_detail(db, CALL, "callback.offered") == []


async def test_a_caller_who_waited_and_pressed_1_confirms_and_is_called_back(settings, db):
    """The exit-key path: app_queue left the queue for [hotline-callback] and the
    dialplan named the queue; the caller already asked, so no question first."""
    server = await offer_call(settings, db, ["1"], "callback", "social_security", nobody=False,
                              done="callback.requested")
    assert agi_sent(server) == [*CONFIRM, *REGISTERED]
    [ticket] = await tickets(db)
    assert ticket["reason"] == "排队等待较久，来电人请求回电" and ticket["department"] == "social_security"
    assert ticket["callback_number"] == "13800138000"


async def test_a_caller_who_asked_and_hangs_up_before_confirming_is_still_called_back(settings, db):
    server = await offer_call(settings, db, [HangUp()], "callback", "social_security", nobody=False,
                              done="callback.requested")
    assert agi_sent(server) == CONFIRM                  # nothing after the hangup
    [ticket] = await tickets(db)
    assert ticket["callback_number"] == "13800138000"
    events = await ticket_events(db, ticket["id"])
    assert events[-1]["detail"]["confirmed"] == "hung_up"


async def test_no_answer_to_the_confirmation_puts_the_caller_back_in_the_queue(settings, db):
    server = await offer_call(settings, db, [None, None, None], "callback", "social_security", nobody=False,
                              done="callback.unconfirmed")
    sent = agi_sent(server)
    assert sent.count("GET DATA hotline/callback-confirm 5000 1") == settings.menu.max_attempts
    assert sent[-len(QUEUED):] == QUEUED
    assert await tickets(db) == []

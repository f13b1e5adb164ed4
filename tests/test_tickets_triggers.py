"""Tickets the calls open by themselves, through the real path: the captured
abandoned call (Asterisk 22, QueueCallerAbandon with HoldTime 6) replayed by
the stand-in over AMI, tracked, committed by the call writer and published on
the event hub, where the tickets' trigger opens the callback ticket. And the
start-up reconciliation for what a stopped process missed."""

from __future__ import annotations

from tests.bridge_harness import replay_call
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import Transcript

ABANDONED_CALL = "1795313813.2"


async def tickets_of(db, linkedid: str) -> list[dict]:
    async with db.acquire() as conn:
        return [dict(r) for r in await conn.fetch("SELECT * FROM tickets WHERE linkedid = $1", linkedid)]


async def test_a_caller_who_waited_longer_than_the_limit_and_hung_up_gets_a_callback_ticket(settings, db):
    settings = settings.with_overrides(tickets={"abandoned_callback_seconds": 5})
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    call = await replay_call(transcript.connection(1), settings, db, ABANDONED_CALL)
    assert call["outcome"] == "abandoned" and call["hold_seconds"] == 6
    [ticket] = await tickets_of(db, ABANDONED_CALL)
    assert ticket["source"] == "abandoned" and ticket["callback"] and ticket["state"] == "to_verify"
    assert ticket["caller_number"] == "13800138000" and ticket["department"] == "general"
    assert ticket["reason"] == "排队等待6秒后挂机" and ticket["opened_by"] == "system:abandoned"
    async with db.acquire() as conn:
        events = await conn.fetch("SELECT kind, actor FROM ticket_events WHERE ticket_id = $1", ticket["id"])
    assert [(e["kind"], e["actor"]) for e in events] == [("opened", "system:abandoned")]

    # The same call replayed (a reconnect replays events): still one ticket.
    await replay_call(transcript.connection(1), settings, db, ABANDONED_CALL)
    assert len(await tickets_of(db, ABANDONED_CALL)) == 1


async def test_a_caller_who_hung_up_within_the_limit_gets_no_ticket(settings, db):
    settings = settings.with_overrides(tickets={"abandoned_callback_seconds": 6})
    transcript = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl")
    call = await replay_call(transcript.connection(1), settings, db, ABANDONED_CALL)
    assert call["outcome"] == "abandoned" and call["hold_seconds"] == 6
    assert await tickets_of(db, ABANDONED_CALL) == []


async def test_the_start_up_reconciliation_opens_what_a_stopped_process_missed(settings, db):
    from hotline.hub import EventHub
    from knowledge.store import record_unplaced
    from tickets.calendar import calendar_from
    from tickets.events import TicketTriggers
    from tickets.service import TicketService

    async with db.acquire() as conn:
        await conn.execute(
            """INSERT INTO calls (linkedid, caller_number, started_at, queue, queued_at, abandoned_at, hold_seconds,
                                  ended_at)
               VALUES ('1795313999.1', '13900001111', now() - interval '10 minutes', 'tax',
                       now() - interval '9 minutes', now() - interval '7 minutes', 120, now() - interval '7 minutes'),
                      ('1795313999.2', '13900002222', now() - interval '10 minutes', 'tax',
                       now() - interval '9 minutes', now() - interval '9 minutes', 10, now() - interval '9 minutes'),
                      ('1795313999.3', '13900003333', now() - interval '8 minutes', NULL, NULL, NULL, NULL,
                       now() - interval '6 minutes')""")
    await record_unplaced(db, "我想问一下新能源车补贴", linkedid="1795313999.3")
    service = TicketService(settings, lambda: db, EventHub(), calendar_from(settings.tickets.calendar))
    triggers = TicketTriggers(service)
    assert await triggers.reconcile() == 2
    assert await triggers.reconcile() == 0
    sources = {linkedid: [t["source"] for t in await tickets_of(db, linkedid)]
               for linkedid in ("1795313999.1", "1795313999.2", "1795313999.3")}
    assert sources == {"1795313999.1": ["abandoned"], "1795313999.2": [], "1795313999.3": ["unplaced_question"]}

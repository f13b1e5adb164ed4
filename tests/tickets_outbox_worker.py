"""A 12345 outbox worker in a process of its own, for the test that kills it
with SIGKILL mid-run: ``python -m tests.tickets_outbox_worker DB_URL ENDPOINT``.
It prints ``ready`` once it runs, and runs until it is killed."""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from hotline.hub import EventHub
from hotline.settings import load_settings
from tickets.calendar import calendar_from
from tickets.outbox import DispatchWorker
from tickets.service import TicketService


async def main(database_url: str, endpoint: str) -> None:
    settings = load_settings(env={}).with_overrides(tickets={
        "dispatch_url": endpoint, "dispatch_timeout": 0.3, "dispatch_retry_min": 0.05, "dispatch_retry_max": 0.2})
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    hub = EventHub()
    service = TicketService(settings, lambda: pool, hub, calendar_from(settings.tickets.calendar))
    worker = DispatchWorker(service, settings.tickets, "killed-worker", lease_margin=0.2)
    worker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

"""The 12345 outbox worker: every dispatched case is POSTed to the platform
until it answers, never lost and never taken twice.

* A dispatch is a row of ``ticket_dispatches`` written in the transaction that
  moves the ticket to 已派发12345 (nothing to lose between the two).
* A worker leases due rows (``FOR UPDATE SKIP LOCKED``, lease committed before
  the POST), so several ``hotline`` processes share the outbox and a worker
  that dies mid-POST only delays its rows until the lease runs out.
* Each POST carries the row's ``Idempotency-Key`` header and the body fixed at
  queueing: a retry after a timeout (the platform may have taken the first) is
  the same request, which the platform recognises; once a row has an answer it
  is never sent again.
* Failures (connection refused, timeout, 408/425/429/5xx, a 2xx whose body is
  not an answer) are retried with back-off (``dispatch_retry_min`` doubling to
  ``dispatch_retry_max``), for ever: logged, visible on the row. A 4xx no retry
  can fix ends the row (``failed``) and hands the case back (处理中).

The platform's answer: JSON ``{"status": "accepted" | "rejected" | "answered",
"case_id": ..., "reason" | "result": ...}``, in the POST's response or later to
``POST /api/tickets/12345/answers`` (tickets/http.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Mapping

import aiohttp

from hotline.logs import get_logger
from hotline.settings import TicketSettings
from hotline.tasks import cancel_and_wait
from tickets import store
from tickets.service import ACTOR_12345, TicketInputError, TicketService

log = get_logger(__name__)

BATCH = 20
RETRYABLE_STATUS = frozenset({408, 425, 429})
LEASE_MARGIN = 30.0     # seconds a lease outlives the POST's timeout (a dead worker's rows wait this long)
MAX_ERROR_TEXT = 500


def backoff(settings: TicketSettings, attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones."""
    return min(settings.dispatch_retry_min * 2 ** max(0, attempts - 1), settings.dispatch_retry_max)


def parse_answer(body: str) -> dict[str, Any] | None:
    """The platform's answer in a response body, or None when it is not one."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("status") not in ("accepted", "rejected", "answered"):
        return None
    return answer


class DispatchWorker:
    def __init__(self, service: TicketService, settings: TicketSettings, origin: str, batch: int = BATCH,
                 lease_margin: float = LEASE_MARGIN):
        self._service = service
        self._lease_margin = lease_margin
        self._settings = settings
        self._origin = origin
        self._batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0        # POSTs made
        self.answered = 0    # POSTs that brought an answer
        self.failures = 0

    @property
    def lease_seconds(self) -> float:
        return self._settings.dispatch_timeout + self._lease_margin

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._session = aiohttp.ClientSession()
            self._task = asyncio.create_task(self._run(), name="ticket-outbox")

    async def close(self) -> None:
        """Stop; the rows this worker leased and did not finish go back at once
        (one cut mid-POST may reach the platform twice: same key, same case)."""
        await cancel_and_wait(self._task)
        if self._task is not None:
            try:
                async with self._service.pool_of().acquire() as conn:
                    await store.release_dispatches(conn, self._origin)
            except Exception as exc:   # their leases run out instead
                log.warning("tickets.outbox_leases_kept", error=repr(exc))
        self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_once(self) -> int:
        """Lease the due dispatches and send each; returns how many were leased."""
        async with self._service.pool_of().acquire() as conn:
            rows = await store.claim_dispatches(conn, self._batch, self.lease_seconds, self._origin)
        for row in rows:
            await self._deliver(row)
        return len(rows)

    async def _deliver(self, row: Mapping[str, Any]) -> None:
        assert self._session is not None, "start() first"
        settings = self._settings
        self.sent += 1
        try:
            async with self._session.post(
                    settings.dispatch_url, json=row["payload"],
                    headers={"Idempotency-Key": row["idempotency_key"]},
                    timeout=aiohttp.ClientTimeout(total=settings.dispatch_timeout)) as response:
                status = response.status
                body = await response.text()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            await self._retry(row, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_TEXT])
            return
        if 200 <= status < 300:
            answer = parse_answer(body)
            if answer is None:
                await self._retry(row, f"HTTP {status} without an answer: {body[:200]!r}")
                return
            self.answered += 1
            try:
                await self._service.apply_dispatch_answer(answer, ACTOR_12345, dispatch_id=row["id"])
            except TicketInputError as exc:
                await self._retry(row, f"unusable answer: {exc}")
            return
        if status >= 500 or status in RETRYABLE_STATUS:
            await self._retry(row, f"HTTP {status}: {body[:200]}")
            return
        await self._service.dispatch_failed(row["id"], f"HTTP {status}: {body[:200]}")

    async def _retry(self, row: Mapping[str, Any], error: str) -> None:
        self.failures += 1
        delay = backoff(self._settings, row["attempts"])
        async with self._service.pool_of().acquire() as conn:
            await store.retry_dispatch_later(conn, row["id"], self._origin, delay, error)
        log.warning("tickets.dispatch_retry", dispatch=row["id"], ticket_id=row["ticket_id"],
                    attempts=row["attempts"], retry_in=delay, error=error)

    async def _run(self) -> None:
        while True:
            try:
                if await self.run_once() >= self._batch:
                    continue
            except Exception as exc:   # the database away: rows wait in their table
                log.error("tickets.outbox_failed", error=repr(exc))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._settings.timer_poll)
            except asyncio.TimeoutError:
                pass

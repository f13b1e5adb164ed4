"""The loop the tickets' workers share (timers, calls): a round of work, then a
wait until the next due moment (at most ``poll`` seconds, since other processes
add work too), or until this process pokes it because it added work. A round
that fails (the database away, ...) is tried again after :data:`RETRY_SECONDS`;
the work waits in its table meanwhile."""

from __future__ import annotations

import asyncio

from hotline.logs import get_logger
from hotline.tasks import cancel_and_wait

log = get_logger(__name__)

RETRY_SECONDS = 1.0


class RoundWorker:
    task_name = "ticket-rounds"
    failure_event = "tickets.round_failed"

    def __init__(self, poll: float, batch: int):
        self._poll = poll
        self._batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def poke(self) -> None:
        """Work was added here: look again now."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def run_once(self) -> int:
        """One round; returns how many items it took (a full batch: go again at once)."""
        raise NotImplementedError

    async def seconds_to_next(self) -> float:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            try:
                taken = await self.run_once()
                if taken >= self._batch:
                    continue               # more are due: no sleep
                wait = await self.seconds_to_next()
            except Exception as exc:
                log.error(self.failure_event, error=repr(exc), retry_in=RETRY_SECONDS)
                wait = RETRY_SECONDS
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass

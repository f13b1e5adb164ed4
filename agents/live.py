"""The agents' live facts, out to whoever follows them.

A message (an agent's new state, a call not answered, the queue panel) is
published at once through the event hub in this process (its browsers on
``/ws/events?topics=agents,queues`` and in-process subscribers: the consoles
are on the AMI path, a screen-pop must not wait for PostgreSQL), then sent to
the other ``hotline`` processes on the database with ``NOTIFY``, batched on a
task of its own. That part is a live view, not a record: when PostgreSQL is
away the notifications are dropped (the state log, written through the call
writer, keeps everything).

:class:`Throttle` publishes something that changes often (the queue panel) at
most once per interval, and always its latest form.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable, Mapping

import asyncpg

from hotline.hub import NOTIFY_CHANNEL, NOTIFY_LIMIT, EventHub
from hotline.logs import get_logger
from hotline.tasks import cancel_and_wait

log = get_logger(__name__)

OUTBOX_LIMIT = 2000    # notifications waiting for PostgreSQL; older ones are dropped
RETRY_SECONDS = 1.0


class LiveFeed:
    def __init__(self, hub: EventHub, pool: Callable[[], asyncpg.Pool]):
        self._hub = hub
        self._pool = pool
        self._outbox: deque[str] = deque(maxlen=OUTBOX_LIMIT)
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.dropped = 0

    def publish(self, topic: str, message: Mapping[str, Any]) -> None:
        """Never waits."""
        text = self._hub.publish_live(topic, message)
        if len(text.encode()) >= NOTIFY_LIMIT:
            log.warning("agents.live_too_large", topic=topic, size=len(text.encode()))
            return
        if self._task is None:
            return
        if len(self._outbox) == self._outbox.maxlen:
            self.dropped += 1
        self._outbox.append(text)
        self._ready.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="agents-live-notify")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch = list(self._outbox)
            self._outbox.clear()
            if not batch:
                continue
            try:
                async with self._pool().acquire(timeout=RETRY_SECONDS) as conn:
                    await conn.execute("SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m",
                                       NOTIFY_CHANNEL, batch)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
                self.dropped += len(batch)
                log.warning("agents.live_not_sent", messages=len(batch), error=repr(exc))
                await asyncio.sleep(RETRY_SECONDS)


class Throttle:
    """Calls ``publish()`` after :meth:`changed`, at most once per ``interval``
    seconds: at once when the last call was long enough ago, else at the end of
    the interval (whatever changed meanwhile is in that one call)."""

    def __init__(self, interval: float, publish: Callable[[], None]):
        self._interval = interval
        self._publish = publish
        self._last = float("-inf")
        self._pending: asyncio.TimerHandle | None = None

    def changed(self) -> None:
        if self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last + self._interval - loop.time()
        if wait <= 0:
            self._fire()
        else:
            self._pending = loop.call_later(wait, self._fire)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _fire(self) -> None:
        self._pending = None
        self._last = asyncio.get_running_loop().time()
        try:
            self._publish()
        except Exception:
            log.exception("agents.publish_failed")

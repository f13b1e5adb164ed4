"""Other processes' committed events, heard through PostgreSQL LISTEN.

Several ``hotline`` processes share one database: one bridge per Asterisk node,
and web-only processes for the consoles. Each listens on
:data:`hotline.hub.NOTIFY_CHANNEL` on one connection it keeps out of the pool
for as long as it listens, and hands every payload to the hub, which skips its
own. The connection is watched: when it drops, the relay reconnects
with back-off and says so; notifications sent while it was away are not
replayed (live views are live; the database holds everything).
"""

from __future__ import annotations

import asyncio
import random

import asyncpg

from hotline.hub import NOTIFY_CHANNEL, EventHub
from hotline.logs import get_logger
from hotline.tasks import cancel_and_wait

log = get_logger(__name__)

KEEPALIVE_SECONDS = 10.0


class NotifyRelay:
    def __init__(self, pool: asyncpg.Pool, hub: EventHub, *, reconnect_min: float = 0.2,
                 reconnect_max: float = 10.0):
        self._pool = pool
        self._hub = hub
        self._reconnect = (reconnect_min, reconnect_max)
        self._task: asyncio.Task | None = None
        self._listening = asyncio.Event()
        self.connections = 0

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def wait_listening(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._listening.wait(), timeout)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notify-relay")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._hub.receive(payload)

    async def _run(self) -> None:
        delay = self._reconnect[0]
        while True:
            try:
                await self._listen()
                delay = self._reconnect[0]
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
                log.warning("notify.disconnected", error=repr(exc), retry_in=round(delay, 2))
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._reconnect[1])

    async def _listen(self) -> None:
        conn = await self._pool.acquire(timeout=10)
        lost = asyncio.Event()

        def terminated(_conn: object) -> None:
            lost.set()

        conn.add_termination_listener(terminated)
        try:
            await conn.add_listener(NOTIFY_CHANNEL, self._deliver)
            self.connections += 1
            self._listening.set()
            log.info("notify.listening", channel=NOTIFY_CHANNEL, session=self.connections)
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    # A half-open socket delivers nothing and reports nothing: ask.
                    await conn.fetchval("SELECT 1", timeout=KEEPALIVE_SECONDS)
            raise OSError("the listening connection was closed")
        finally:
            self._listening.clear()
            try:
                # A terminated connection refuses even this; it is released all the same.
                conn.remove_termination_listener(terminated)
                if not conn.is_closed():
                    await conn.remove_listener(NOTIFY_CHANNEL, self._deliver)
                await self._pool.release(conn, timeout=2)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError):
                pass

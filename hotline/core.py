"""The core every feature builds on, made once by the composition root.

It holds the settings, the PostgreSQL pool, the AMI connection and the
subscriptions to its events, the call writer, the event hub with its NOTIFY
relay, and the health checks. Features receive it in ``setup(app, core)`` and
plug into it: subscribe to AMI events (:attr:`ami_events`) or committed facts
(:attr:`hub`), submit changes (:attr:`writer`), run something after every AMI
login (:meth:`on_login`), register health checks (:attr:`health`) and say how
to wait until their background work is done (:meth:`on_settle`).

Nothing here starts in ``__init__``: :meth:`open` and :meth:`close` run from
the aiohttp application's ``cleanup_ctx`` (see :mod:`hotline.app`), so start-up
and shutdown are one function and nothing is left running.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import asyncpg

from hotline.db import create_pool
from hotline.health import Health
from hotline.hub import EventHub
from hotline.logs import get_logger
from hotline.notify import NotifyRelay
from hotline.settings import Settings
from ivr.ami import AmiConnection, AmiError
from ivr.ami.dispatch import AmiEvents
from ivr.ami.message import Event, list_items
from ivr.calls.writer import CallWriter

log = get_logger(__name__)

# (connection, the live channels from CoreShowChannels) -> resync done
LoginHook = Callable[[AmiConnection, list[Event]], Awaitable[None]]
Drain = Callable[[], Awaitable[object]]
SHUTDOWN_HOOK_SECONDS = 8.0   # a GET DATA in progress (5 s digit timeout) must finish first
CHECK_ACQUIRE = 1.0   # seconds: a pool with no free connection is reported, not waited on


class Core:
    def __init__(self, settings: Settings, *, bridge: bool = True, pool: asyncpg.Pool | None = None):
        """``bridge=False``: no AMI connection (a web-only process, which sees
        the calls through the other processes' notifications). ``pool``: use this
        pool instead of opening one from the settings (it is not closed here)."""
        self.settings = settings
        self.hub = EventHub()
        self.health = Health()
        self.ami_events = AmiEvents()
        self.writer = CallWriter(settings.calls, publisher=self.hub)
        self.ami: AmiConnection | None = None
        if bridge:
            self.ami = AmiConnection(settings.ami, on_login=self._logged_in)
            self.ami.register_event("*", self.ami_events.dispatch)
        self._given_pool = pool
        self._pool: asyncpg.Pool | None = None
        self.relay: NotifyRelay | None = None
        self._login_hooks: list[tuple[str, LoginHook]] = []
        self._shutdown_hooks: list[tuple[str, Callable[[AmiConnection], Awaitable[None]]]] = []
        self._drains: list[Drain] = []
        self.health.add("database", self._database_ok)
        self.health.add("write_backlog", lambda: self.writer.backlog, required=False)
        # A web-only process sees calls only through the relay; a bridge works without it.
        self.health.add("notify_listening", lambda: self.relay is not None and self.relay.listening,
                        required=not bridge)
        if self.ami is not None:
            self.health.add("ami_connected", lambda: self.ami is not None and self.ami.logged_in)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the core is not open yet")
        return self._pool

    # -- what features plug in ----------------------------------------------------------

    def on_login(self, name: str, hook: LoginHook) -> None:
        """Run ``hook`` after every AMI login, before the connection counts as up,
        in the order features registered (each one's failure is logged, the
        others still run)."""
        self._login_hooks.append((name, hook))

    def on_shutdown(self, name: str, hook: Callable[[AmiConnection], Awaitable[None]]) -> None:
        """Run ``hook`` when the service stops, while AMI is still connected and
        after the heartbeat is retired (each gets SHUTDOWN_HOOK_SECONDS)."""
        self._shutdown_hooks.append((name, hook))

    def on_settle(self, drain: Drain) -> None:
        """``drain()`` returns once the feature's background work is done."""
        self._drains.append(drain)

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        db = self.settings.database
        self._pool = self._given_pool or await create_pool(db.url, db.pool_min, db.pool_max)
        self.writer.start(self._pool)
        self.relay = NotifyRelay(self._pool, self.hub)
        self.relay.start()

    def connect(self) -> None:
        """Start the AMI connection (after every feature is ready for its events)."""
        if self.ami is not None:
            self.ami.connect()

    async def disconnect(self) -> None:
        """Leave Asterisk in a state that needs nobody: the heartbeat retired
        first (new calls go straight to the fallback queue), then each feature's
        shutdown hook (the menu sends its callers to a person), then Logoff."""
        if self.ami is None:
            return
        if self.ami.logged_in:
            try:
                await self.ami.retire_heartbeat()
            except AmiError as exc:
                log.error("core.heartbeat_not_retired", error=repr(exc))
            for name, hook in self._shutdown_hooks:
                try:
                    await asyncio.wait_for(hook(self.ami), SHUTDOWN_HOOK_SECONDS)
                except Exception as exc:   # shutdown goes on: the dialplan's timeout is the last resort
                    log.error("core.shutdown_hook_failed", hook=name, error=repr(exc))
        await self.ami.close()

    async def close(self) -> None:
        await self.settle_quietly()
        await self.writer.close()
        if self.relay is not None:
            await self.relay.close()
        self.hub.browsers.close_all("the service is stopping")
        if self._pool is not None and self._given_pool is None:
            await self._pool.close()
        self._pool = None

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until everything received so far is in PostgreSQL and every
        feature's follow-up work (recording registration, ...) is done."""
        await self.writer.flush(timeout)
        for drain in self._drains:
            await drain()
        await self.writer.flush(timeout)

    async def settle_quietly(self) -> None:
        try:
            await self.settle()
        except asyncio.TimeoutError:
            log.error("core.settle_timeout", backlog=self.writer.backlog)

    # -- internals ----------------------------------------------------------------------

    async def _logged_in(self, ami: AmiConnection) -> None:
        listing = await ami.request({"Action": "CoreShowChannels"}, as_list=None)
        channels = list_items(listing, "coreshowchannel")
        for name, hook in self._login_hooks:
            try:
                await hook(ami, channels)
            except Exception:
                log.exception("core.login_hook_failed", hook=name)

    async def _database_ok(self) -> bool:
        async with self.pool.acquire(timeout=CHECK_ACQUIRE) as conn:
            return await conn.fetchval("SELECT 1") == 1


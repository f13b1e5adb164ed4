"""The core every feature builds on, made once by the composition root.

It holds the settings, the PostgreSQL pools, the AMI connection and the
subscriptions to its events, the call writer, the event hub with its NOTIFY
relay, and the health checks. Features receive it in ``setup(app, core)`` and
plug into it: subscribe to AMI events (:attr:`ami_events`) or committed facts
(:attr:`hub`), submit changes (:attr:`writer`), run something after every AMI
login (:meth:`on_login`), register health checks (:attr:`health`) and say how
to wait until their background work is done (:meth:`on_settle`).

Separate pools, so reading cannot slow writing: :attr:`pool` (the features'
own queries, ``[database] pool_max``), :attr:`api_pool` (the HTTP API's,
``api_pool_max`` connections with ``statement_timeout``: small, so API load
takes a bounded share of PostgreSQL and of the event loop the AMI reader
shares), the call writer's own (``writer_pool_max``), which nothing else
takes, and one connection for the NOTIFY relay's LISTEN.
``/healthz`` fails while PostgreSQL cannot be written (down, read-only, a
standby) or the writer's last attempt failed, and reports the writer's
backlog, spill files and dead letters.

Nothing here starts in ``__init__``: :meth:`open` and :meth:`close` run from
the aiohttp application's ``cleanup_ctx`` (see :mod:`hotline.app`), so start-up
and shutdown are one function and nothing is left running.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import asyncpg

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
# Would a write succeed here? Not on a standby, not in a session that is read-only.
WRITABLE = "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'"


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """On release, only what asyncpg always does (roll back a transaction left
    open, drop listeners): no reset query, one round trip less per request.
    For pools whose users set no session state (no SET, LISTEN, advisory lock)."""


async def open_pool(url: str, min_size: int, max_size: int, *, connect_timeout: float,
                    statement_timeout: float = 0.0, name: str = "hotline",
                    keep_session: bool = False) -> asyncpg.Pool:
    """A pool whose connections say who they are (``application_name``, seen in
    pg_stat_activity) and, with ``statement_timeout`` > 0, cancel longer statements."""
    server_settings = {"application_name": name, "timezone": "UTC"}   # JSON made by PostgreSQL says +00:00
    if statement_timeout > 0:
        server_settings["statement_timeout"] = str(int(statement_timeout * 1000))
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, timeout=connect_timeout,
                                     server_settings=server_settings,
                                     reset=_keep_session if keep_session else None)


class Core:
    def __init__(self, settings: Settings, *, bridge: bool = True, pool: asyncpg.Pool | None = None):
        """``bridge=False``: no AMI connection (a web-only process, which sees
        the calls through the other processes' notifications). ``pool``: use this
        pool instead of opening the four from the settings, for everything, the
        writer included (it is not closed here)."""
        self.settings = settings
        self.hub = EventHub()
        self.health = Health()
        self.ami_events = AmiEvents()
        self.writer = CallWriter(settings.calls, publisher=self.hub,
                                 connect_timeout=settings.database.connect_timeout)
        self.ami: AmiConnection | None = None
        if bridge:
            self.ami = AmiConnection(settings.ami, on_login=self._logged_in)
            self.ami.register_event("*", self.ami_events.dispatch)
        self._given_pool = pool
        self._pool: asyncpg.Pool | None = None
        self._api_pool: asyncpg.Pool | None = None
        self._writer_pool: asyncpg.Pool | None = None
        self._listen_pool: asyncpg.Pool | None = None
        self.relay: NotifyRelay | None = None
        self._login_hooks: list[tuple[str, LoginHook]] = []
        self._shutdown_hooks: list[tuple[str, Callable[[AmiConnection], Awaitable[None]]]] = []
        self._drains: list[Drain] = []
        self._queue_status: asyncio.Future | None = None   # this login's QueueStatus listing
        self.health.add("database", self._database_ok)
        self.health.add("database_writable", self._database_writable)
        self.health.add("writer_writing", lambda: not self.writer.failing)
        self.health.add("write_backlog", lambda: self.writer.backlog, required=False)
        self.health.add("write_spilled", lambda: self.writer.spilled, required=False)
        self.health.add("writer", self.writer.status, required=False)
        self.health.add("api_pool", self._api_pool_report, required=False)
        # A web-only process sees calls only through the relay; a bridge works without it.
        self.health.add("notify_listening", lambda: self.relay is not None and self.relay.listening,
                        required=not bridge)
        if self.ami is not None:
            self.health.add("ami_connected", lambda: self.ami is not None and self.ami.logged_in)

    @property
    def pool(self) -> asyncpg.Pool:
        """The features' own queries."""
        if self._pool is None:
            raise RuntimeError("the core is not open yet")
        return self._pool

    @property
    def api_pool(self) -> asyncpg.Pool:
        """The HTTP API's queries: few connections, each statement bounded."""
        if self._api_pool is None:
            raise RuntimeError("the core is not open yet")
        return self._api_pool

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

    async def queue_status(self, ami: AmiConnection) -> Any:
        """This login's QueueStatus listing (for ``list_items``), asked of Asterisk
        once whichever login hook asks first: the calls' and the agents' resyncs
        both read it, and a replayed session expects one."""
        if self._queue_status is None:
            self._queue_status = asyncio.ensure_future(ami.request({"Action": "QueueStatus"}, as_list=None))
        return await asyncio.shield(self._queue_status)

    def on_settle(self, drain: Drain) -> None:
        """``drain()`` returns once the feature's background work is done."""
        self._drains.append(drain)

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        db = self.settings.database
        if self._given_pool is not None:
            self._pool = self._api_pool = self._writer_pool = self._listen_pool = self._given_pool
        else:
            opened: list[asyncpg.Pool] = []
            try:
                for low, high, name, timeout, keep in (
                        (1, db.writer_pool_max, "hotline-writer", 0.0, False),
                        (1, 1, "hotline-listen", 0.0, False),                  # the LISTEN session, held
                        (min(db.pool_min, db.pool_max), db.pool_max, "hotline", 0.0, False),
                        (1, db.api_pool_max, "hotline-api", db.statement_timeout, True)):
                    opened.append(await open_pool(db.url, low, high, connect_timeout=db.connect_timeout,
                                                  statement_timeout=timeout, name=name, keep_session=keep))
            except BaseException:
                for pool in opened:
                    await _close_pool(pool)
                raise
            self._writer_pool, self._listen_pool, self._pool, self._api_pool = opened
        self.writer.start(self._writer_pool, namespace=await _database_identity(self._writer_pool))
        self.relay = NotifyRelay(self._listen_pool, self.hub)
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
        # Still failing after settling: what is left goes to a spill file for the next start.
        await self.writer.close(timeout=1.0 if self.writer.failing else 10.0)
        if self.relay is not None:
            await self.relay.close()
        self.hub.browsers.close_all("the service is stopping")
        if self._given_pool is None:
            for pool in (self._api_pool, self._pool, self._writer_pool, self._listen_pool):
                if pool is not None:
                    await _close_pool(pool)
        self._pool = self._api_pool = self._writer_pool = self._listen_pool = None

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until everything received so far is in PostgreSQL and every
        feature's follow-up work (recording registration, ...) is done."""
        await self.writer.flush(timeout)
        for drain in self._drains:
            await asyncio.wait_for(drain(), timeout)
        await self.writer.flush(timeout)

    async def settle_quietly(self) -> None:
        try:
            await self.settle()
        except asyncio.TimeoutError:
            log.error("core.settle_timeout", backlog=self.writer.backlog, spilled=self.writer.spilled)

    # -- internals ----------------------------------------------------------------------

    async def _logged_in(self, ami: AmiConnection) -> None:
        self._queue_status = None
        listing = await ami.request({"Action": "CoreShowChannels"}, as_list=None)
        channels = list_items(listing, "coreshowchannel")
        for name, hook in self._login_hooks:
            try:
                await hook(ami, channels)
            except Exception:
                log.exception("core.login_hook_failed", hook=name)

    async def _database_ok(self) -> bool:
        """Asked on the writer's pool: a busy HTTP API does not make the service unhealthy."""
        if self._writer_pool is None:
            raise RuntimeError("the core is not open yet")
        async with self._writer_pool.acquire(timeout=CHECK_ACQUIRE) as conn:
            return await conn.fetchval("SELECT 1") == 1

    def _api_pool_report(self) -> dict[str, int] | None:
        if self._api_pool is None:
            return None
        return {"size": self._api_pool.get_size(), "idle": self._api_pool.get_idle_size(),
                "max": self._api_pool.get_max_size()}

    async def _database_writable(self) -> bool:
        """Asked on the writer's pool: can the writer's sessions write?"""
        if self._writer_pool is None:
            raise RuntimeError("the core is not open yet")
        async with self._writer_pool.acquire(timeout=CHECK_ACQUIRE) as conn:
            try:
                writable = bool(await conn.fetchval(WRITABLE, timeout=CHECK_ACQUIRE))
            except BaseException:
                conn.terminate()
                raise
            if not writable:
                # A session opened read-only stays read-only: ask a new one next time.
                conn.terminate()
            return writable


async def _database_identity(pool: asyncpg.Pool) -> str:
    """``<system identifier>-<database>``: the same for a primary and its
    promoted standby, different for any other database (the writer's spill
    files are kept apart by it)."""
    async with pool.acquire() as conn:
        name = await conn.fetchval("SELECT current_database()")
        try:
            system = await conn.fetchval("SELECT system_identifier FROM pg_control_system()")
        except asyncpg.PostgresError:
            return str(name)
    return f"{system}-{name}"


async def _close_pool(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), 5.0)
    except (asyncio.TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        pool.terminate()


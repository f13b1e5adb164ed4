"""One supervised AMI connection: login, keepalive, reconnect with back-off.

A thin layer over :class:`panoramisk.Manager` (its event registration and
dispatch are kept) that fixes what panoramisk 1.4 leaves out:

* every action has a timeout and fails with a named error (panoramisk waits forever);
* the keepalive Ping must be answered within ``ping_timeout``, otherwise the socket
  is presumed half-open and torn down (panoramisk never reads the Pong);
* reconnects back off exponentially with jitter instead of hammering a restarting
  Asterisk every 2 s, and a refused login is logged as such;
* unanswered actions fail when the socket drops instead of being resent blindly
  after the next login.

After each login the ``on_login`` coroutine runs (the bridge rebuilds its view of
live calls there) and the dialplan heartbeat variable is refreshed, which the
dialplan checks before it hands a caller to the AsyncAGI menu.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Awaitable, Callable, Mapping

from panoramisk import Manager
from panoramisk.message import Message

from hotline.logs import get_logger
from hotline.tasks import cancel_and_wait
from hotline.settings import AmiSettings
from ivr.ami.action import ListAwareAction
from ivr.ami.errors import (
    AmiActionFailed,
    AmiActionTimeout,
    AmiBadAction,
    AmiConnectionLost,
    AmiError,
    AmiLoginFailed,
    AmiNotConnected,
)
from ivr.ami.protocol import HotlineAMIProtocol

log = get_logger(__name__)

LoginHook = Callable[["AmiConnection"], Awaitable[None]]


class AmiConnection(Manager):
    def __init__(self, settings: AmiSettings, on_login: LoginHook | None = None):
        super().__init__(
            host=settings.host,
            port=settings.port,
            username=settings.username,
            secret=settings.secret,
            protocol_factory=HotlineAMIProtocol,
            encoding="utf8",
        )
        self.settings = settings
        self._login_hook = on_login
        self._runner: asyncio.Task | None = None
        self._lost = asyncio.Event()
        self._logged_in = asyncio.Event()
        self._stopping = False
        self.logins = 0  # how many sessions were established (for tests and metrics)
        self._heartbeat_retired = False

    # -- lifecycle -------------------------------------------------------------------

    def connect(self, *args, **kwargs) -> asyncio.Task:  # type: ignore[override]
        """Start the supervisor task; it keeps a session up until :meth:`close`."""
        self.loop = asyncio.get_running_loop()
        if self._runner is None or self._runner.done():
            self._stopping = False
            self._runner = asyncio.create_task(self._run(), name="ami-connection")
        return self._runner

    async def wait_logged_in(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._logged_in.wait(), timeout)

    @property
    def logged_in(self) -> bool:
        return self._logged_in.is_set()

    async def close(self) -> None:  # type: ignore[override]
        """Log off politely if connected, then stop reconnecting."""
        self._stopping = True
        if self.logged_in:
            try:
                await self.request({"Action": "Logoff"}, timeout=1.0)
            except AmiError:
                pass
        if self.protocol is not None:
            self.protocol.close()
        await cancel_and_wait(self._runner)

    async def _run(self) -> None:
        delay = self.settings.reconnect_min
        while not self._stopping:
            try:
                await self._session()
                delay = self.settings.reconnect_min
            except AmiLoginFailed as exc:
                log.error("ami.login_refused", error=str(exc), hint="check ami.username / HOTLINE_AMI_SECRET")
                delay = self.settings.reconnect_max
            except (OSError, AmiError, asyncio.TimeoutError) as exc:
                log.warning("ami.connect_failed", error=repr(exc), retry_in=round(delay, 2))
            except Exception:
                log.exception("ami.session_crashed")
            if self._stopping:
                break
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.settings.reconnect_max)

    async def _session(self) -> None:
        """Connect, log in, run the login hook, and return when the socket is gone."""
        self._lost.clear()
        transport, protocol = await asyncio.wait_for(
            self.loop.create_connection(HotlineAMIProtocol, self.settings.host, self.settings.port),
            timeout=self.settings.action_timeout,
        )
        protocol.factory = self
        protocol.encoding = "utf8"
        self.protocol = protocol
        keepalive = None
        try:
            try:
                await self.request(
                    {"Action": "Login", "Username": self.settings.username,
                     "Secret": self.settings.secret, "Events": "on"}
                )
            except AmiActionFailed as exc:
                raise AmiLoginFailed(exc.message) from exc
            self.logins += 1
            log.info("ami.logged_in", host=self.settings.host, port=self.settings.port, session=self.logins)
            await self.refresh_heartbeat()
            keepalive = asyncio.create_task(self._keepalive(), name="ami-keepalive")
            if self._login_hook is not None:
                await self._login_hook(self)
            self._logged_in.set()
            await self._lost.wait()
        finally:
            self._logged_in.clear()
            if keepalive is not None:
                keepalive.cancel()
            protocol.close()

    def connection_lost(self, exc) -> None:  # called by the protocol
        if not self._stopping:
            log.warning("ami.connection_lost", error=repr(exc) if exc else None)
        self._lost.set()

    def ping(self) -> None:  # panoramisk's unchecked pinger; ours is _keepalive
        return None

    # -- actions ---------------------------------------------------------------------

    async def request(
        self, action: Mapping[str, str], timeout: float | None = None, as_list: bool | None = None
    ) -> Message | list[Message]:
        """Send one action and return its response (a list for list actions).
        Raises AmiBadAction (nothing sent), AmiNotConnected, AmiActionTimeout,
        AmiConnectionLost or AmiActionFailed."""
        _check_headers(action)
        protocol = self.protocol
        if protocol is None or protocol.closed:
            raise AmiNotConnected(f"{action.get('Action')}: not connected to Asterisk")
        pending = ListAwareAction(dict(action), as_list=as_list)
        future = protocol.send(pending, as_list=as_list)
        limit = timeout if timeout is not None else self.settings.action_timeout
        try:
            result = await asyncio.wait_for(asyncio.shield(future), limit)
        except asyncio.TimeoutError:
            protocol.responses.pop(pending.action_id, None)
            if not future.done():
                future.cancel()
            raise AmiActionTimeout(
                f"{pending['Action']} ({pending.action_id}) unanswered after {limit:g}s"
            ) from None
        first = result[0] if isinstance(result, list) else result
        if str(first.get("Response", "")).lower() == "error":
            raise AmiActionFailed(str(pending["Action"]), str(first.get("Message", "")))
        return result

    async def retire_heartbeat(self) -> None:
        """Tell the dialplan the bridge is gone, before it goes: the heartbeat
        becomes 0 (age: decades) and the keepalive stops refreshing it, so a call
        arriving during shutdown goes straight to the fallback queue instead of
        entering a menu nobody will drive."""
        self._heartbeat_retired = True
        await self.request({"Action": "Setvar", "Variable": self.settings.heartbeat_variable, "Value": "0"},
                           timeout=self.settings.ping_timeout)

    async def refresh_heartbeat(self) -> None:
        """Tell the dialplan the bridge is alive (a global variable holding the epoch)."""
        if self._heartbeat_retired:
            return
        await self.request(
            {"Action": "Setvar", "Variable": self.settings.heartbeat_variable, "Value": str(int(time.time()))},
            timeout=self.settings.ping_timeout,
        )

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval)
            try:
                await self.request({"Action": "Ping"}, timeout=self.settings.ping_timeout)
                await self.refresh_heartbeat()
            except AmiActionTimeout:
                log.error("ami.keepalive_unanswered", detail="socket presumed half-open, reconnecting",
                          timeout=self.settings.ping_timeout)
                if self.protocol is not None and self.protocol.transport is not None:
                    self.protocol.transport.abort()
                return
            except (AmiConnectionLost, AmiNotConnected):
                return


def _check_headers(action: Mapping[str, object]) -> None:
    """Refuse a header name or value with CR or LF: AMI ends a header at the line
    break, so the rest would become headers of Asterisk's choosing, and a blank line
    a second action (Originate, Command, ...). Values may be lists (repeated headers)."""
    name = " ".join(str(action.get("Action", "?")).split())  # the message stays one line
    for key, value in action.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for part, what in [(key, "header name")] + [(v, f"value of header {key!r}") for v in values]:
            text = str(part)
            if "\r" in text or "\n" in text:
                raise AmiBadAction(f"{name}: the {what} contains a line break (CR/LF), "
                                   "which would split the action; nothing was sent")

"""One caller's AsyncAGI session, driven over the AMI connection.

Why AsyncAGI rather than FastAGI: the menu's commands and results then travel
on the AMI connection the bridge already keeps (one socket per Asterisk node, no
inbound port on the bridge), the results arrive in the same ordered stream as
the call's other events, and a bridge that reconnects sees in CoreShowChannels
which callers are still waiting in ``AGI(agi:async)`` and can rescue them. Its
known weakness, that ``AGI(agi:async)`` never times out, is covered in the
dialplan by the heartbeat check and ``TIMEOUT(absolute)`` (config/asterisk).

``Action: AGI`` only queues a command ("Added AGI command to queue"); the result
comes later as an ``AsyncAGIExec`` event with ``CommandId`` (lower-case d), which
:meth:`AsyncAgiChannel.deliver` hands to the waiting command.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Mapping

from ivr.ami import AmiConnection, AmiError
from ivr.menu.agi_result import AgiResult, parse_agi_result

_session_numbers = itertools.count(1)


class AgiHangup(Exception):
    """The caller hung up, or the AGI session ended, before the command finished.

    ``result`` is the result line when Asterisk answered ``result=-1`` (or
    ``HANGUP``): for a prompt command that is also what a missing sound file
    gives (see :mod:`ivr.menu.prompt_failure`); None when the session ended first."""

    def __init__(self, message: str, result: AgiResult | None = None):
        super().__init__(message)
        self.result = result


class AgiCommandError(Exception):
    """Asterisk refused or failed the command (5xx result, or the AMI action failed)."""


class AsyncAgiChannel:
    def __init__(self, ami: AmiConnection, channel: str, uniqueid: str, linkedid: str,
                 env: Mapping[str, str], command_timeout: float = 120.0):
        self.ami = ami
        self.channel = channel
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.env = dict(env)
        self.command_timeout = command_timeout
        self._prefix = f"menu-{uniqueid}-{next(_session_numbers)}"
        self._numbers = itertools.count(1)
        self._pending: dict[str, asyncio.Future[AgiResult]] = {}
        self.ended = False
        self.hangup_requested = False     # HangupRequest, SoftHangupRequest or Hangup seen
        self.status: str | None = None    # AGISTATUS once the session has ended
        self._ended = asyncio.Event()
        self._status_known = asyncio.Event()

    async def send(self, command: str) -> str:
        """Queue a command without waiting for its result (EXEC Queue runs until
        the call ends). Returns the CommandID."""
        command_id = f"{self._prefix}-{next(self._numbers)}"
        await self._queue(command, command_id)
        return command_id

    async def send_all(self, commands: list[str]) -> None:
        """Queue several commands at once, in this order, without waiting for their
        results: each ``Action: AGI`` is written before any answer is read, so a
        later one cannot be refused for a session the first one ended meanwhile."""
        sends = [asyncio.ensure_future(self.send(command)) for command in commands]
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _queue(self, command: str, command_id: str) -> None:
        if self.ended:
            raise AgiHangup(f"{command}: AGI session already ended")
        try:
            await self.ami.request({"Action": "AGI", "Channel": self.channel,
                                    "Command": command, "CommandID": command_id})
        except AmiError as exc:
            raise AgiCommandError(f"{command}: {exc}") from exc

    async def command(self, command: str, timeout: float | None = None) -> AgiResult:
        """Run one AGI command and return its parsed result."""
        future: asyncio.Future[AgiResult] = asyncio.get_running_loop().create_future()
        # Register before sending: the result can arrive right behind the response.
        command_id = f"{self._prefix}-{next(self._numbers)}"
        self._pending[command_id] = future
        try:
            await self._queue(command, command_id)
            result = await asyncio.wait_for(future, timeout or self.command_timeout)
        finally:
            self._pending.pop(command_id, None)
        if result.hung_up:
            raise AgiHangup(f"{command}: {result.line}", result)
        if result.code != 200:
            raise AgiCommandError(f"{command}: {result.line}")
        return result

    def deliver(self, event: Mapping[str, Any]) -> None:
        """Feed an AsyncAGIExec event (headers lower-cased) to the waiting command."""
        future = self._pending.get(str(event.get("commandid", "")))
        if future is None or future.done():
            return
        try:
            # panoramisk has already URL-decoded the Result header.
            future.set_result(parse_agi_result(str(event.get("result", ""))))
        except ValueError as exc:
            future.set_exception(AgiCommandError(str(exc)))

    def end(self, reason: str) -> None:
        """AsyncAGIEnd or Hangup: nothing more will be answered."""
        self.ended = True
        self._ended.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AgiHangup(reason))

    def hangup_seen(self) -> None:
        """The channel is being hung up (HangupRequest, SoftHangupRequest, Hangup)."""
        self.hangup_requested = True

    def status_set(self, status: str) -> None:
        """``AGISTATUS`` as the dialplan sees it when AGI() returns (SUCCESS,
        FAILURE, HANGUP, NOTFOUND)."""
        self.status = status
        self._status_known.set()

    async def wait_ended(self, timeout: float) -> bool:
        """True once the session has ended (at most ``timeout`` seconds of waiting)."""
        return await _wait(self._ended, timeout)

    async def wait_status(self, timeout: float) -> str | None:
        """The session's AGISTATUS, waiting at most ``timeout`` seconds for it."""
        await _wait(self._status_known, timeout)
        return self.status


async def _wait(flag: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(flag.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    return flag.is_set()

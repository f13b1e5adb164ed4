"""Emulate ``Action: AGI`` (AsyncAGI) the way res_agi.c answers it.

Reply ``Added AGI command to queue``, then ``AGIExecStart``, any side
event (VarSet), ``AGIExecEnd`` and ``AsyncAGIExec`` with the client's
CommandID as the last header; ``ASYNCAGI BREAK`` adds ``AsyncAGIEnd``.
The channel header block is the one of the ``AsyncAGIStart`` already sent
for that channel on this connection.
"""

from __future__ import annotations

import asyncio
import random
from typing import Protocol
from urllib.parse import quote

from .agi import AgiCaller, AgiOutcome
from .channels import ChannelTracker, Items
from .framing import get_header
from .templates import Templates


class AgiContext(Protocol):
    """What the AGI emulation needs from a connection."""

    channels: ChannelTracker

    async def send(self, data: str | bytes) -> None: ...


def encode_result(line: str) -> str:
    """URL-encode an AGI result line as Asterisk does in AsyncAGIExec."""
    return quote(line + "\n", safe="()")


class AsyncAgiEmulation:
    """Answers ``Action: AGI`` for channels that are in ``AGI(agi:async)``."""

    def __init__(self, templates: Templates, caller: AgiCaller, rng: random.Random) -> None:
        self.templates = templates
        self.caller = caller
        self.rng = rng
        self.commands: list[tuple[str, str]] = []
        # A channel runs its queued commands one at a time: while a long one
        # (EXEC AudioSocket) runs, later ones wait behind it.
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: set[asyncio.Task] = set()

    def _error(self, action_id: str | None, message: str) -> str:
        # Same layout as every captured "Response: Error" (astman_send_error).
        return self.templates["permission_denied"].render({"Message": message}, action_id=action_id)

    async def handle(self, ctx: AgiContext, message: dict, action_id: str | None) -> None:
        """Answer one ``Action: AGI`` message."""
        channel = get_header(message, "Channel")
        command = get_header(message, "Command")
        command_id = get_header(message, "CommandID") or None
        if not channel or not command:
            await ctx.send(self._error(action_id, "Both, Channel and Command are *required*"))
            return
        state = ctx.channels.state(channel)
        if state == "unknown":
            await ctx.send(self._error(action_id, f"Channel {channel} does not exist."))
            return
        if state == "up":
            await ctx.send(self._error(action_id, f"Failed to add AGI command to channel {channel} queue"))
            return
        await ctx.send(self.templates["agi_added"].render(action_id=action_id))
        if state == "agi-ended":
            return  # queued on the channel, but nothing runs it any more
        lock = self._locks.setdefault(channel, asyncio.Lock())
        if ctx.channels.script_busy(channel):
            # Queued behind a command the script is answering (ASYNCAGI BREAK behind
            # EXEC Queue): it runs when that one ends, or never if the AGI session does.
            task = asyncio.create_task(self._after_script(lock, ctx, channel, command, command_id))
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)
            return
        if lock.locked():
            task = asyncio.create_task(self._execute(lock, ctx, channel, command, command_id))
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)
            return
        await self._execute(lock, ctx, channel, command, command_id)

    async def _after_script(self, lock: asyncio.Lock, ctx: AgiContext, channel: str, command: str,
                            command_id: str | None) -> None:
        await ctx.channels.script_idle(channel)
        await self._execute(lock, ctx, channel, command, command_id)

    async def _execute(self, lock: asyncio.Lock, ctx: AgiContext, channel: str, command: str,
                       command_id: str | None) -> None:
        await lock.acquire()
        if ctx.channels.state(channel) in ("agi-ended", "unknown"):
            lock.release()
            return
        self.commands.append((channel, command))
        outcome = self.caller.execute(channel, command)
        block = ctx.channels.agi_blocks[channel]
        exec_id = str(self.rng.randint(1, 2**31 - 1))
        await ctx.send(self.templates["agi_exec_start"].render(
            {"CommandId": exec_id, "Command": command}, block=block))
        if outcome.pending is None:
            try:
                await self._finish(ctx, channel, block, command, command_id, exec_id, outcome)
            finally:
                lock.release()
            return
        task = asyncio.create_task(self._finish_later(lock, ctx, channel, block, command, command_id,
                                                      exec_id, outcome))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _finish_later(self, lock: asyncio.Lock, ctx: AgiContext, channel: str, block: Items,
                            command: str, command_id: str | None, exec_id: str, outcome: AgiOutcome) -> None:
        assert outcome.pending is not None
        try:
            line, agi_status = await outcome.pending
            done = AgiOutcome(line, "200", "Failure" if agi_status else "Success",
                              ends_agi=agi_status is not None,
                              after_end=[("AGISTATUS", agi_status)] if agi_status else [])
            await self._finish(ctx, channel, block, command, command_id, exec_id, done)
        finally:
            lock.release()

    async def _finish(self, ctx: AgiContext, channel: str, block: Items, command: str,
                      command_id: str | None, exec_id: str, outcome: AgiOutcome) -> None:
        await ctx.send(self._after_start(block, command, command_id, exec_id, outcome))
        if outcome.ends_agi:
            ctx.channels.end_agi(channel)
        if outcome.caller_hangs_up:
            ctx.channels.hang_up(channel)

    def _varsets(self, block: Items, pairs: list[tuple[str, str]]) -> str:
        return "".join(self.templates["varset"].render({"Variable": k, "Value": v}, block=block)
                       for k, v in pairs)

    def _after_start(self, block: Items, command: str, command_id: str | None,
                     exec_id: str, outcome: AgiOutcome) -> str:
        text = self.templates["hangup_request"].render(block=block) if outcome.caller_hangs_up else ""
        text += self._varsets(block, outcome.variables)
        text += self.templates["agi_exec_end"].render(
            {"CommandId": exec_id, "Command": command,
             "ResultCode": outcome.exec_code, "Result": outcome.exec_result}, block=block)
        text += self.templates["async_agi_exec"].render(
            {"Result": encode_result(outcome.result), "CommandId": command_id}, block=block)
        if outcome.ends_agi:
            text += self.templates["async_agi_end"].render(block=block)
            text += self._varsets(block, outcome.after_end)
        if outcome.caller_hangs_up:
            text += self.templates["hangup"].render({"Cause": "0", "Cause-txt": "Unknown"}, block=block)
        return text

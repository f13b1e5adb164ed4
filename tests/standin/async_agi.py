"""Emulate ``Action: AGI`` (AsyncAGI) the way res_agi.c answers it.

Reply ``Added AGI command to queue``, then ``AGIExecStart``, any side
event (VarSet), ``AGIExecEnd`` and ``AsyncAGIExec`` with the client's
CommandID as the last header; ``ASYNCAGI BREAK`` adds ``AsyncAGIEnd``.
The channel header block is the one of the ``AsyncAGIStart`` already sent
for that channel on this connection.
"""

from __future__ import annotations

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
        self.commands.append((channel, command))
        outcome = self.caller.execute(channel, command)
        block = ctx.channels.agi_blocks[channel]
        exec_id = str(self.rng.randint(1, 2**31 - 1))
        await ctx.send(self.templates["agi_exec_start"].render(
            {"CommandId": exec_id, "Command": command}, block=block))
        await ctx.send(self._after_start(block, command, command_id, exec_id, outcome))
        if outcome.ends_agi:
            ctx.channels.end_agi(channel)

    def _varsets(self, block: Items, pairs: list[tuple[str, str]]) -> str:
        return "".join(self.templates["varset"].render({"Variable": k, "Value": v}, block=block)
                       for k, v in pairs)

    def _after_start(self, block: Items, command: str, command_id: str | None,
                     exec_id: str, outcome: AgiOutcome) -> str:
        text = self._varsets(block, outcome.variables)
        text += self.templates["agi_exec_end"].render(
            {"CommandId": exec_id, "Command": command,
             "ResultCode": outcome.exec_code, "Result": outcome.exec_result}, block=block)
        text += self.templates["async_agi_exec"].render(
            {"Result": encode_result(outcome.result), "CommandId": command_id}, block=block)
        if outcome.ends_agi:
            text += self.templates["async_agi_end"].render(block=block)
            text += self._varsets(block, outcome.after_end)
        return text

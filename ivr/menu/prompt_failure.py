"""Telling a prompt Asterisk could not play from a caller who hung up.

Asterisk answers a prompt command with ``result=-1`` both when the caller hangs
up during it and when the sound file is missing or unreadable; only what
follows tells them apart (captures e2e E1, E2; fact 28 one folder up):

* the caller hung up: ``HangupRequest`` came first (the hangup is what
  interrupted the prompt), then ``AsyncAGIEnd``, ``AGISTATUS=HANGUP``, ``Hangup``;
* ``STREAM FILE`` of a missing file (E1): ``AsyncAGIEnd`` and ``AGISTATUS=FAILURE``
  at once (res_agi leaves its loop on RESULT_FAILURE), the channel is still up
  and the dialplan goes on to its fallback queue;
* ``GET DATA`` of a missing file (E2): nothing follows; the AGI session keeps
  waiting for commands, and the caller hears silence until we send one.

Events from Asterisk arrive in order, so the end of the session, when it comes,
comes right behind the result. If it has not come within :data:`END_GRACE`,
Asterisk is asked: a command that runs proves the session is open (a session
that has ended never runs it, and its end fails the command).
"""

from __future__ import annotations

import asyncio
from enum import Enum

from ivr.menu.agi_result import AgiResult
from ivr.menu.async_agi import AgiCommandError, AgiHangup, AsyncAgiChannel

END_GRACE = 0.3         # seconds for AsyncAGIEnd / AGISTATUS to follow the result
PROBE_TIMEOUT = 3.0     # seconds for the question to Asterisk to be answered
PROBE = "CHANNEL STATUS"


class PromptFailure(str, Enum):
    """Why a prompt command answered ``result=-1``, named after what happens to
    the caller (the ``reaction`` of the ``menu.prompt_failed`` row)."""

    CALLER_LEFT = "caller_left"              # the caller hung up: nothing to do
    DIALPLAN_FALLBACK = "dialplan_fallback"  # the prompt failed, Asterisk ended the AGI session:
                                             # the dialplan queues the caller
    FALLBACK_QUEUE = "fallback_queue"        # the prompt failed, the AGI session waits for us:
                                             # the menu sends the caller to the fallback queue


class PromptFailed(Exception):
    """A prompt could not be played and the caller is still on the line."""

    def __init__(self, prompt: str, command: str, result: str, failure: PromptFailure):
        super().__init__(f"{command} {prompt}: {result} ({failure.value})")
        self.prompt = prompt
        self.command = command
        self.result = result
        self.failure = failure


async def why_failed(agi: AsyncAgiChannel) -> PromptFailure:
    """After a prompt command answered ``result=-1``: did the caller hang up,
    or did the prompt fail (and is the AGI session still ours)?"""
    if agi.hangup_requested:
        return PromptFailure.CALLER_LEFT
    if not await agi.wait_ended(END_GRACE):
        try:
            await agi.command(PROBE, timeout=PROBE_TIMEOUT)
        except AgiHangup:
            if not agi.ended:
                return PromptFailure.CALLER_LEFT      # the question itself answered -1
        except (AgiCommandError, asyncio.TimeoutError):
            # No answer either way: a person is the safe guess; if the caller
            # has gone, the fallback's commands are answered by nobody.
            return PromptFailure.CALLER_LEFT if agi.hangup_requested else PromptFailure.FALLBACK_QUEUE
        else:
            return PromptFailure.CALLER_LEFT if agi.hangup_requested else PromptFailure.FALLBACK_QUEUE
    # The session has ended. Unless the channel is being hung up, AGI() has
    # returned and the dialplan goes on (AGISTATUS=FAILURE in E1).
    status = await agi.wait_status(END_GRACE)
    if agi.hangup_requested or status == "HANGUP":
        return PromptFailure.CALLER_LEFT
    return PromptFailure.DIALPLAN_FALLBACK


async def play(agi: AsyncAgiChannel, command: str, prompt: str, args: str) -> AgiResult:
    """Play a prompt (``STREAM FILE`` or ``GET DATA``); raises :class:`PromptFailed`
    when Asterisk could not play it, :class:`AgiHangup` when the caller left."""
    try:
        return await agi.command(f"{command} {prompt} {args}")
    except AgiHangup as exc:
        if exc.result is None:
            raise
        failure = await why_failed(agi)
        if failure is PromptFailure.CALLER_LEFT:
            raise
        raise PromptFailed(prompt, command, exc.result.line, failure) from exc

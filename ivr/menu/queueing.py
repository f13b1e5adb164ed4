"""Putting a caller in a queue from their AsyncAGI session, and asking Asterisk
whether anybody is there to answer.

``EXEC Queue <queue>,c`` runs app_queue inside the AGI session (as captured
from Asterisk 22 without ``c``). Option ``c`` makes Queue() return when the
agent hangs up instead of hanging the caller up too (apps/app_queue.c,
``queue_exec``: a call that was answered ends with ``QUEUESTATUS=CONTINUE``);
a caller who hangs up ends the channel as before. ``ASYNCAGI BREAK`` is queued
on the channel right behind it: res_agi runs a channel's queued commands one
after the other, so the AGI session returns to the dialplan when the queue
call is over, whether or not this process is still there to send anything.
The dialplan then asks the satisfaction survey (``QUEUESTATUS=CONTINUE``), or
follows app_queue's exit key to the callback offer, with the heartbeat check
in front of either, so a caller never waits in an AGI session nobody drives.
"""

from __future__ import annotations

from hotline.logs import get_logger
from ivr.menu.async_agi import AsyncAgiChannel

log = get_logger(__name__)


async def enter_queue(agi: AsyncAgiChannel, queue: str) -> None:
    """Queue the caller; the AGI session ends by itself when the call does."""
    # The dialplan's last-resort timeout must not cut the caller off in the queue.
    await agi.command("SET VARIABLE TIMEOUT(absolute) 0")
    await agi.send_all([f"EXEC Queue {queue},c", "ASYNCAGI BREAK"])


async def logged_in_agents(agi: AsyncAgiChannel, queue: str) -> int | None:
    """How many of the queue's members are logged in (their phone is not
    unavailable: app_queue's ``QUEUE_MEMBER(<queue>,logged)``, read through AGI
    ``GET VARIABLE``, which evaluates a function). None when Asterisk gives no
    number (the queue is unknown to it, or the answer is garbled)."""
    result = await agi.command(f"GET VARIABLE QUEUE_MEMBER({queue},logged)")
    if result.result == "1" and (result.data or "").strip().isdigit():
        return int((result.data or "").strip())
    log.warning("menu.queue_members_unknown", queue=queue, result=result.line)
    return None

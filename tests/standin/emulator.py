"""Answer the client's actions that the script does not expect.

Every reply is rendered from a template cut out of the captures, so the
text and header order are exactly what Asterisk 22 sent.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from pathlib import Path
from typing import Awaitable, Callable, Protocol

from .agi import AgiCaller
from .async_agi import AsyncAgiEmulation
from .channels import ChannelTracker
from .framing import get_header, parse_message, set_action_id
from .originate import Originated, OriginateOutcome, originate_response
from .queues import EmulatedQueues, Member, members_from_listing
from .templates import load_templates
from .transcript import FIXTURES

# manager.c lets these through before authentication.
_BEFORE_LOGIN = {"login", "logoff", "challenge"}


class Context(Protocol):
    """The connection as the emulator sees it."""

    logged_in: bool
    channels: ChannelTracker

    async def send(self, data: str | bytes) -> None: ...

    async def close(self) -> None: ...


class Emulator:
    """An "idle Asterisk": Login, Ping, Events, Setvar/Getvar, lists, queues, AsyncAGI.

    ``variables`` feeds Getvar and AGI GET VARIABLE; keys are a name or a
    ``(channel, name)`` pair. ``lists[name]`` holds the raw messages of a
    list answer (start response, items, Complete) for CoreShowChannels and
    QueueSummary, and for QueueStatus when a test pins one; otherwise QueueStatus
    is answered from :attr:`queues`, the emulated app_queue, whose members
    (``members``; by default the one member of the restart capture's listing,
    8006 in social_security) QueueAdd/QueuePause/QueueRemove change.
    ``secret`` makes Login check the Secret.
    """

    def __init__(self, *, secret: str | None = None, agi: AgiCaller | None = None,
                 variables: dict | None = None,
                 queues: tuple[str, ...] = ("social_security", "general_queue"),
                 auth_fail_delay: float = 1.0, seed: int | None = None,
                 fixtures: Path = FIXTURES, agi_underneath: frozenset[str] = frozenset(),
                 members: "list[Member] | None" = None,
                 originate: "list[OriginateOutcome] | None" = None) -> None:
        self.templates = load_templates(fixtures)
        self.lists: dict[str, list[str]] = {k: list(v) for k, v in self.templates.lists.items()
                                            if k != "QueueStatus"}
        self.secret = secret
        self.auth_fail_delay = auth_fail_delay
        if members is None:
            members = members_from_listing(self.templates.lists["QueueStatus"])
        self.queues = EmulatedQueues(self.templates, queues, members)
        # Channels that wait in AsyncAGI although CoreShowChannels shows another
        # application (what a capture observed; see ChannelTracker).
        self.agi_underneath = agi_underneath
        self.agi = agi or AgiCaller()
        if variables is not None:
            for key, value in self.agi.variables.items():
                variables.setdefault(key, value)
        self.variables: dict = variables if variables is not None else self.agi.variables
        self.agi.variables = self.variables
        self.agi.functions.setdefault("QUEUE_MEMBER", self.queues.member_function)
        self._agi = AsyncAgiEmulation(self.templates, self.agi, random.Random(seed))
        self.handled: list[dict] = []
        # What each Originate does, in order (then: answered); what was originated.
        self.originate_outcomes: list[OriginateOutcome] = list(originate or [])
        self.originated: list[Originated] = []
        self._channel_numbers = iter(range(0x40, 0x10000))
        self._later: set[asyncio.Task] = set()
        self._handlers: dict[str, Callable[[Context, dict, str | None], Awaitable[None]]] = {
            "login": self._login, "logoff": self._logoff, "ping": self._ping,
            "events": self._events, "setvar": self._setvar, "getvar": self._getvar,
            "coreshowchannels": self._list, "queuestatus": self._queue_status,
            "queuesummary": self._list, "queueadd": self.queues.add,
            "queuepause": self.queues.pause, "queueremove": self.queues.remove,
            "redirect": self._redirect, "agi": self._agi_action, "originate": self._originate,
        }

    @property
    def agi_commands(self) -> list[tuple[str, str]]:
        """``(channel, command text)`` of every emulated AGI command, in order."""
        return self._agi.commands

    async def handle(self, ctx: Context, message: dict) -> bool:
        """Answer ``message``; return False when the action is not emulated."""
        action = get_header(message, "Action")
        action_id = get_header(message, "ActionID") or None
        if not ctx.logged_in and action.lower() not in _BEFORE_LOGIN:
            await ctx.send(self.templates["permission_denied"].render(action_id=action_id))
            return True
        handler = self._handlers.get(action.lower())
        if handler is None:
            return False
        self.handled.append(message)
        await handler(ctx, message, action_id)
        return True

    def unknown_action(self, message: dict) -> str:
        """Asterisk's answer to an action it does not know."""
        action = get_header(message, "Action")
        template = self.templates["unknown_action"]
        text = dict(template.items)["Message"].replace("FooBar", action, 1)
        return template.render({"Message": text}, action_id=get_header(message, "ActionID") or None)

    # -- session -------------------------------------------------------------
    async def _login(self, ctx: Context, message: dict, action_id: str | None) -> None:
        if self.secret is not None and get_header(message, "Secret") != self.secret:
            await asyncio.sleep(self.auth_fail_delay)
            await ctx.send(self.templates["login_failed"].render(action_id=action_id))
            await ctx.close()
            return
        ctx.logged_in = True
        await ctx.send(self.templates["login_ok"].render(action_id=action_id))
        await ctx.send(self.templates["fully_booted"].render())

    async def _logoff(self, ctx: Context, message: dict, action_id: str | None) -> None:
        await ctx.send(self.templates["goodbye"].render(action_id=action_id))
        await ctx.close()

    async def _ping(self, ctx: Context, message: dict, action_id: str | None) -> None:
        await ctx.send(self.templates["pong"].render({"Timestamp": f"{time.time():.6f}"},
                                                     action_id=action_id))

    async def _events(self, ctx: Context, message: dict, action_id: str | None) -> None:
        off = get_header(message, "EventMask").strip().lower() == "off"
        name = "events_off" if off else "events_on"
        await ctx.send(self.templates[name].render(action_id=action_id))

    # -- variables -----------------------------------------------------------
    async def _setvar(self, ctx: Context, message: dict, action_id: str | None) -> None:
        channel = get_header(message, "Channel")
        name, value = get_header(message, "Variable"), get_header(message, "Value")
        self.variables[(channel, name) if channel else name] = value
        await ctx.send(self.templates["setvar_ok"].render(action_id=action_id))
        block = ctx.channels.agi_blocks.get(channel)
        if block:
            await ctx.send(self.templates["varset"].render(
                {"Variable": name, "Value": value}, block=block))

    async def _getvar(self, ctx: Context, message: dict, action_id: str | None) -> None:
        channel = get_header(message, "Channel")
        name = get_header(message, "Variable")
        value = self.variables.get((channel, name), self.variables.get(name, ""))
        await ctx.send(self.templates["getvar"].render(
            {"Variable": name, "Value": value}, action_id=action_id))

    # -- lists ---------------------------------------------------------------
    async def _list(self, ctx: Context, message: dict, action_id: str | None) -> None:
        name = next(k for k in self.lists if k.lower() == get_header(message, "Action").lower())
        messages = list(self.lists[name])
        queue = get_header(message, "Queue")
        if queue and name.startswith("Queue") and len(messages) >= 2:
            items = [m for m in messages[1:-1] if parse_message(m).get("Queue") == queue]
            complete = re.sub(r"(?m)^ListItems: \d+\r\n", f"ListItems: {len(items)}\r\n",
                              messages[-1])
            messages = [messages[0], *items, complete]
        messages = [set_action_id(m, action_id) for m in messages]
        await ctx.send(messages[0])
        if messages[1:]:
            await ctx.send("".join(messages[1:]))

    # -- queues and channels ------------------------------------------------
    async def _queue_status(self, ctx: Context, message: dict, action_id: str | None) -> None:
        if "QueueStatus" in self.lists:      # a test pinned a captured answer
            await self._list(ctx, message, action_id)
            return
        messages = self.queues.status(action_id, get_header(message, "Queue"))
        await ctx.send(messages[0])
        await ctx.send("".join(messages[1:]))

    async def _redirect(self, ctx: Context, message: dict, action_id: str | None) -> None:
        channel = get_header(message, "Channel")
        if ctx.channels.state(channel) == "unknown":
            # manager.c action_redirect's text (not captured), in the captured error response.
            await ctx.send(self.templates["queueadd_no_queue"].render(
                {"Message": f"Channel does not exist: {channel}"}, action_id=action_id))
            return
        await ctx.send(self.templates["redirect_ok"].render(action_id=action_id))

    async def _originate(self, ctx: Context, message: dict, action_id: str | None) -> None:
        """``Async: true``: the captured "Originate successfully queued", then the
        OriginateResponse (see tests/standin/originate.py) after the outcome's delay,
        or before the answer (``first``), or never (``silent``)."""
        outcome = self.originate_outcomes.pop(0) if self.originate_outcomes else OriginateOutcome()
        number = next(self._channel_numbers)
        event = originate_response(self.templates["originate_response"], message, outcome,
                                   channel=f"PJSIP/carrier-{number:08x}", uniqueid=f"{int(time.time())}.{number}")
        self.originated.append(Originated(message, outcome))
        if outcome.refused:
            # The captured "Response: Error" layout (astman_send_error), with its Message.
            await ctx.send(self.templates["permission_denied"].render({"Message": outcome.refused},
                                                                      action_id=action_id))
            return
        ok = self.templates["originate_ok"].render(action_id=action_id)
        if outcome.first and not outcome.silent:
            await ctx.send(event + ok)
            return
        await ctx.send(ok)
        if outcome.silent:
            return

        async def later() -> None:
            await asyncio.sleep(outcome.delay)
            await ctx.send(event)

        task = asyncio.create_task(later())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    # -- AsyncAGI ------------------------------------------------------------
    async def _agi_action(self, ctx: Context, message: dict, action_id: str | None) -> None:
        await self._agi.handle(ctx, message, action_id)

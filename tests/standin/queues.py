"""app_queue as the stand-in plays it: dynamic members added, paused and
removed over AMI, and QueueStatus answered from that state.

Every reply and event is rendered from a template cut out of the captures
(``actions.jsonl``: QueueAdd, QueuePause on/off, QueueRemove twice, QueueStatus
with a paused member and a waiting caller). Two error texts were not captured
and are app_queue.c's own (Asterisk 22, ``manager_add_queue_member`` and
``manager_pause_queue_member``), put into the captured error response:
``Unable to add interface: Already there`` and ``Interface not found``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from .framing import get_header, parse_message

if TYPE_CHECKING:
    from .emulator import Context
    from .templates import Templates

ALREADY_THERE = "Unable to add interface: Already there"
INTERFACE_NOT_FOUND = "Interface not found"


def _true(value: str) -> bool:
    return value.strip().lower() in ("true", "yes", "1", "on")


@dataclass
class Member:
    """One dynamic member, with the values app_queue reports for it."""

    queue: str
    interface: str
    name: str
    state_interface: str
    penalty: str = "0"
    paused: bool = False
    reason: str = ""
    status: str = "1"              # device state: 1 = not in use, 5 = unavailable
    in_call: str = "0"
    calls_taken: str = "0"
    last_call: str = "0"
    last_pause: str = "0"
    login_time: str = field(default_factory=lambda: str(int(time.time())))

    def event_values(self) -> dict[str, str]:
        """The headers of QueueMember* events (MemberName/Interface)."""
        return {"Queue": self.queue, "MemberName": self.name, "Interface": self.interface,
                "StateInterface": self.state_interface, "Penalty": self.penalty,
                "CallsTaken": self.calls_taken, "LastCall": self.last_call, "LastPause": self.last_pause,
                "LoginTime": self.login_time, "InCall": self.in_call, "Status": self.status,
                "Paused": "1" if self.paused else "0", "PausedReason": self.reason}

    def item_values(self) -> dict[str, str]:
        """The headers of a QueueStatus QueueMember item (Name/Location)."""
        values = self.event_values()
        values["Name"] = values.pop("MemberName")
        values["Location"] = values.pop("Interface")
        return values


def members_from_listing(messages: Iterable[str]) -> list[Member]:
    """The members of a captured QueueStatus answer."""
    members = []
    for raw in messages:
        h = parse_message(raw)
        if h.get("Event") != "QueueMember":
            continue
        members.append(Member(queue=h["Queue"], interface=h["Location"], name=h["Name"],
                              state_interface=h.get("StateInterface", h["Location"]),
                              penalty=h.get("Penalty", "0"), paused=h.get("Paused") == "1",
                              reason=h.get("PausedReason", ""), status=h.get("Status", "1"),
                              in_call=h.get("InCall", "0"), calls_taken=h.get("CallsTaken", "0"),
                              last_call=h.get("LastCall", "0"), last_pause=h.get("LastPause", "0"),
                              login_time=h.get("LoginTime", "0")))
    return members


class EmulatedQueues:
    """The queues' dynamic members, changed by QueueAdd/QueuePause/QueueRemove
    (each answered and announced as app_queue does) or by a test directly
    (:meth:`member`: a change Asterisk made without telling this connection,
    e.g. while the client was disconnected)."""

    def __init__(self, templates: "Templates", queues: Iterable[str], members: Iterable[Member]) -> None:
        self.templates = templates
        self.queues = list(dict.fromkeys(queues))
        self.members: dict[tuple[str, str], Member] = {(m.queue, m.interface): m for m in members}

    def member(self, queue: str, interface: str) -> Member:
        return self.members[(queue, interface)]

    def of(self, interface: str) -> list[Member]:
        return [m for m in self.members.values() if m.interface == interface]

    def _error(self, message: str, action_id: str | None) -> str:
        return self.templates["queueadd_no_queue"].render({"Message": message}, action_id=action_id)

    async def add(self, ctx: "Context", message: dict, action_id: str | None) -> None:
        queue = get_header(message, "Queue")
        interface = get_header(message, "Interface")
        if queue not in self.queues:
            await ctx.send(self.templates["queueadd_no_queue"].render(action_id=action_id))
            return
        if (queue, interface) in self.members:
            await ctx.send(self._error(ALREADY_THERE, action_id))
            return
        paused = _true(get_header(message, "Paused"))
        member = Member(queue=queue, interface=interface,
                        name=get_header(message, "MemberName") or interface,
                        state_interface=get_header(message, "StateInterface") or interface,
                        penalty=get_header(message, "Penalty") or "0", paused=paused,
                        reason=get_header(message, "Reason") if paused else "",
                        last_pause=str(int(time.time())) if paused else "0")
        self.members[(queue, interface)] = member
        await ctx.send(self.templates["queueadd_ok"].render(action_id=action_id))
        await ctx.send(self.templates["queue_member_added"].render(member.event_values()))

    async def pause(self, ctx: "Context", message: dict, action_id: str | None) -> None:
        interface = get_header(message, "Interface")
        queue = get_header(message, "Queue")
        paused = _true(get_header(message, "Paused"))
        targets = [m for m in self.of(interface) if not queue or m.queue == queue]
        if not targets:
            await ctx.send(self._error(INTERFACE_NOT_FOUND, action_id))
            return
        events = []
        for member in targets:
            if paused and not member.paused:
                member.last_pause = str(int(time.time()))
            member.paused = paused
            member.reason = get_header(message, "Reason") if paused else ""
            events.append(self.templates["queue_member_pause"].render(member.event_values()))
        await ctx.send(self.templates["queuepause_on" if paused else "queuepause_off"].render(action_id=action_id))
        await ctx.send("".join(events))

    async def remove(self, ctx: "Context", message: dict, action_id: str | None) -> None:
        key = (get_header(message, "Queue"), get_header(message, "Interface"))
        member = self.members.pop(key, None)
        if member is None:
            await ctx.send(self.templates["queueremove_not_there"].render(action_id=action_id))
            return
        await ctx.send(self.templates["queueremove_ok"].render(action_id=action_id))
        await ctx.send(self.templates["queue_member_removed"].render(member.event_values()))

    def member_function(self, args: list[str]) -> str:
        """``QUEUE_MEMBER(<queue>,<option>)`` as app_queue's queue_function_mem_read
        counts: ``logged`` = members whose device is not unavailable (5) or invalid
        (4), ``count`` = all; a queue it does not know counts 0."""
        queue, option = (args + ["", ""])[:2]
        members = [m for m in self.members.values() if m.queue == queue]
        if option.strip() == "logged":
            members = [m for m in members if m.status not in ("4", "5")]
        return str(len(members))

    def status(self, action_id: str | None, queue: str = "") -> list[str]:
        """A QueueStatus answer: the start response, per queue its QueueParams and
        members, and the Complete event counting the items."""
        items = []
        for name in self.queues:
            if queue and name != queue:
                continue
            items.append(self.templates["queue_params"].render(
                {"Queue": name, "Calls": "0", "Completed": "0", "Abandoned": "0", "TalkTime": "0"},
                action_id=action_id))
            items.extend(self.templates["queue_member"].render(m.item_values(), action_id=action_id)
                         for m in self.members.values() if m.queue == name)
        start = self.templates["queuestatus_start"].render(action_id=action_id)
        complete = re.sub(r"(?m)^ListItems: \d+\r\n", f"ListItems: {len(items)}\r\n",
                          self.templates["queuestatus_complete"].render(action_id=action_id))
        return [start, *items, complete]

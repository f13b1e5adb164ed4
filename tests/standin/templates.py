"""Message templates cut from the real captures (never hand-written).

Each template keeps Asterisk's exact header order; rendering only swaps
header values (and the ``Channel`` ... ``Linkedid`` block of channel events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .channels import Items, channel_block
from .framing import format_message, header_items
from .recorded import find_action_id, recorded_event, recorded_list, recorded_response
from .transcript import FIXTURES, Transcript

KEEP = object()


class Template:
    """One captured message that can be re-rendered with other values."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.items: Items = header_items(raw)

    def render(self, values: dict[str, str | None] | None = None, *,
               block: Items | None = None, action_id=KEEP) -> str:
        """Render with header values replaced (``None`` drops the header).

        ``block`` replaces the channel header block; ``action_id=None``
        removes the ActionID line, a string replaces it.
        """
        values = dict(values or {})
        if action_id is not KEEP:
            values["ActionID"] = action_id
        items = list(self.items)
        if block is not None:
            old = channel_block(items)
            if old:
                start = items.index(old[0])
                items[start:start + len(old)] = block
        rendered = []
        for key, value in items:
            if key in values:
                if values[key] is None:
                    continue
                value = values[key]
            rendered.append((key, value))
        return format_message(rendered)


@dataclass
class Templates:
    """All templates the emulator needs, keyed by a short name."""

    messages: dict[str, Template]
    lists: dict[str, list[str]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Template:
        return self.messages[name]


def _login_templates(t: Transcript) -> dict[str, str]:
    # ami-login-and-idle: conn 1 logs in, pings, toggles events, logs off;
    # conn 2 pings before login and then fails the login.
    return {
        "login_ok": recorded_response(t, find_action_id(t, "Login", 1)),
        "fully_booted": recorded_event(t, "FullyBooted"),
        "pong": recorded_response(t, find_action_id(t, "Ping", 1)),
        "events_off": recorded_response(t, find_action_id(t, "Events", 1)),
        "events_on": recorded_response(t, find_action_id(t, "Events", 2)),
        "goodbye": recorded_response(t, find_action_id(t, "Logoff", 1)),
        "permission_denied": recorded_response(t, find_action_id(t, "Ping", 3)),
        "login_failed": recorded_response(t, find_action_id(t, "Login", 2)),
    }


def _action_templates(t: Transcript) -> dict[str, str]:
    # actions.jsonl: every ActionID names the action.
    return {
        "setvar_ok": recorded_response(t, "setvar-ticket"),
        "getvar": recorded_response(t, "getvar-callid"),
        "varset": recorded_event(t, "VarSet", Variable="HOTLINE_TICKET"),
        "queueadd_ok": recorded_response(t, "queueadd-8006"),
        "queueadd_no_queue": recorded_response(t, "queueadd-badqueue"),
        "queue_member_added": recorded_event(t, "QueueMemberAdded"),
        "queuepause_on": recorded_response(t, "queuepause-on"),
        "queuepause_off": recorded_response(t, "queuepause-off"),
        "queueremove_ok": recorded_response(t, "queueremove-8006"),
        "queueremove_not_there": recorded_response(t, "queueremove-again"),
        "queue_member_pause": recorded_event(t, "QueueMemberPause"),
        "queue_member_removed": recorded_event(t, "QueueMemberRemoved"),
        "queuestatus_start": recorded_response(t, find_action_id(t, "QueueStatus")),
        "queue_params": recorded_event(t, "QueueParams"),
        "queue_member": recorded_event(t, "QueueMember"),
        "queue_entry": recorded_event(t, "QueueEntry"),
        "queuestatus_complete": recorded_event(t, "QueueStatusComplete"),
        "redirect_ok": recorded_response(t, "redirect-8025"),
        "originate_ok": recorded_response(t, "originate-chanspy"),
        "originate_response": recorded_event(t, "OriginateResponse"),
        "unknown_action": recorded_response(t, "unknown-action"),
    }


def _agi_templates(menu: Transcript, brk: Transcript) -> dict[str, str]:
    return {
        "agi_added": recorded_response(menu, find_action_id(menu, "AGI", 1)),
        "agi_exec_start": recorded_event(menu, "AGIExecStart"),
        "agi_exec_end": recorded_event(menu, "AGIExecEnd"),
        "async_agi_exec": recorded_event(menu, "AsyncAGIExec"),
        "async_agi_end": recorded_event(brk, "AsyncAGIEnd"),
        # The caller hanging up (capture 2, at the end of the queued call).
        "hangup_request": recorded_event(menu, "HangupRequest"),
        "hangup": recorded_event(menu, "Hangup"),
    }


def _default_lists(restart: Transcript, actions: Transcript) -> dict[str, list[str]]:
    # After the restart (conn 2): no channels, social_security with 8006.
    return {
        "CoreShowChannels": recorded_list(restart, find_action_id(restart, "CoreShowChannels")),
        "QueueStatus": recorded_list(restart, find_action_id(restart, "QueueStatus")),
        "QueueSummary": recorded_list(actions, find_action_id(actions, "QueueSummary")),
    }


@lru_cache(maxsize=4)
def load_templates(fixtures: Path = FIXTURES) -> Templates:
    """Read the captures once and cut out every template."""
    login = Transcript.load(fixtures / "ami-login-and-idle.jsonl")
    actions = Transcript.load(fixtures / "actions.jsonl")
    menu = Transcript.load(fixtures / "call-menu-queue-answered.jsonl")
    brk = Transcript.load(fixtures / "call-asyncagi-break-fallback.jsonl")
    restart = Transcript.load(fixtures / "asterisk-restart-midcall.jsonl")
    raw = {**_login_templates(login), **_action_templates(actions), **_agi_templates(menu, brk)}
    return Templates({name: Template(text) for name, text in raw.items()},
                     _default_lists(restart, actions))

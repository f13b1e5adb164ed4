"""``Originate`` as Asterisk 22 answers it with ``Async: true``.

Captured (``actions.jsonl``, an Originate to the application ChanSpy): the
response "Originate successfully queued", then the event ``OriginateResponse``
with the action's ActionID, ``Response: Success`` and ``Reason: 4``. Not
captured, built from main/manager.c ``fast_originate`` (Asterisk 22) into the
captured event's header order:

* an Originate to a dialplan context says ``Context`` / ``Exten`` where the
  captured one says ``Application`` / ``Data``;
* a call that was not answered says ``Response: Failure``, the ``Reason`` of
  ``__ast_request_and_dial`` (main/channel.c: 5 busy, 3 still ringing when the
  timeout ran out, 8 congestion, 1 hung up before answering, 0 no channel), the
  requested ``Channel`` (tech/data, e.g. ``PJSIP/13800138000@carrier``) and
  ``Uniqueid: <unknown>``, since no channel is left (no ``ChannelId`` given);
* ``CallerIDNum`` / ``CallerIDName`` are the Originate's ``CallerID``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .framing import format_message, get_header
from .templates import Template


@dataclass(frozen=True)
class OriginateOutcome:
    response: str = "Success"
    reason: int = 4
    delay: float = 0.05     # seconds between the answer and the event
    first: bool = False     # the event before the answer (a call that fails at once)
    silent: bool = False    # no event at all (Asterisk went away meanwhile)
    refused: str = ""       # an error answer with this Message instead (e.g. Permission denied)


@dataclass(frozen=True)
class Originated:
    message: dict
    outcome: OriginateOutcome


def _caller_id(value: str) -> tuple[str, str]:
    match = re.fullmatch(r'\s*"?([^"<]*)"?\s*<([^>]*)>\s*', value)
    if match:
        return match.group(2) or "<unknown>", match.group(1).strip() or "<unknown>"
    return value or "<unknown>", "<unknown>"


def originate_response(template: Template, message: dict, outcome: OriginateOutcome, *,
                       channel: str, uniqueid: str) -> str:
    """The OriginateResponse for ``message`` (the client's Originate)."""
    answered = outcome.response == "Success"
    number, name = _caller_id(get_header(message, "CallerID"))
    to_context = not get_header(message, "Application")
    values = {
        "ActionID": get_header(message, "ActionID"), "Response": outcome.response,
        "Channel": channel if answered else get_header(message, "Channel"),
        "Reason": str(outcome.reason), "Uniqueid": uniqueid if answered else "<unknown>",
        "CallerIDNum": number, "CallerIDName": name,
        "Application": get_header(message, "Application"), "Data": get_header(message, "Data"),
    }
    renamed = {"Application": ("Context", get_header(message, "Context")),
               "Data": ("Exten", get_header(message, "Exten"))}
    items = []
    for key, value in template.items:
        if to_context and key in renamed:
            items.append(renamed[key])
        else:
            items.append((key, values.get(key, value)))
    return format_message(items)

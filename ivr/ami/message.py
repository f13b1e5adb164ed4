"""AMI messages as the rest of the service reads them.

Asterisk's header names are not spelled consistently (the Cdr event says
``UniqueID`` where channel events say ``Uniqueid``), so every event is
normalised once, on arrival, to lower-case header names; subscribers and the
call tracker only ever see that form.
"""

from __future__ import annotations

from typing import Any, Mapping

from panoramisk.message import Message

Event = Mapping[str, Any]  # header name in lower case -> value


def normalize(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Lower-case header names so lookups do not depend on Asterisk's spelling."""
    return {str(k).lower(): v for k, v in headers.items()}


def event_name(event: Event) -> str:
    """The event's name in lower case ("" for a response or garbage)."""
    return str(event.get("event", "")).lower()


def list_items(listing: Message | list[Message], event: str | None = None) -> list[dict[str, Any]]:
    """The items of a list response (without the first response and the
    ...Complete event), normalised, optionally only those of one event name."""
    if not isinstance(listing, list):
        return []
    items = []
    for message in listing[1:]:
        item = normalize(message)
        name = event_name(item)
        if name.endswith("complete"):
            continue
        if event is None or name == event:
            items.append(item)
    return items

"""Subscriptions to Asterisk's events, by event name.

The AMI connection hands every message here once; it is normalised once (see
:mod:`ivr.ami.message`) and given to the subscribers of its name, in the order
they subscribed (a subscriber to every event, ``"*"``, keeps its place in that
order: the call tracker, subscribed first, sees each event before the features
that build on its facts). A subscriber that
raises is logged and skipped: one feature's bug never stops the event stream
for the others. Subscribers run on the AMI reader's path, so they must not
block: they decide, submit to the call writer, or start a task.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from hotline.logs import bound_call, get_logger
from ivr.ami.message import Event, event_name, normalize

log = get_logger(__name__)

Subscriber = Callable[[Event, datetime], None]   # (normalised event, arrival time)
CallIdOf = Callable[[Event], "str | None"]


def _linkedid(event: Event) -> str | None:
    return event.get("linkedid") or event.get("uniqueid") or None


class AmiEvents:
    def __init__(self) -> None:
        self._subscriptions: list[tuple[str, Subscriber]] = []
        self._by_name: dict[str, tuple[Subscriber, ...]] = {}   # built on first use of a name
        # Which call a log line is about; the call tracker knows better for events
        # that carry only a Uniqueid (Cdr) and replaces this.
        self.call_id_of: CallIdOf = _linkedid

    def subscribe(self, name: str, subscriber: Subscriber) -> None:
        """Call ``subscriber`` for each event called ``name`` (case-insensitive),
        or for every event with ``"*"``."""
        self._subscriptions.append((name.lower(), subscriber))
        self._by_name.clear()

    def _subscribers(self, name: str) -> tuple[Subscriber, ...]:
        found = self._by_name.get(name)
        if found is None:
            found = tuple(s for wanted, s in self._subscriptions if wanted in (name, "*"))
            self._by_name[name] = found
        return found

    def dispatch(self, _source: Any, message: Any) -> None:
        """panoramisk's callback signature: (manager, message)."""
        event = normalize(message)
        received_at = datetime.now(timezone.utc)
        name = event_name(event)
        with bound_call(self.call_id_of(event)):
            for subscriber in self._subscribers(name):
                try:
                    subscriber(event, received_at)
                except Exception:
                    log.exception("ami.subscriber_failed", event=name,
                                  subscriber=getattr(subscriber, "__qualname__", repr(subscriber)))

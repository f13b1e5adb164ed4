"""The event hub: committed call facts, published to whoever follows them.

The call writer hands every committed batch to :meth:`EventHub.publish`:

* in-process subscribers (features: the recording registrar, later the agents'
  screen-pop and ticket rules) are called with the :class:`Committed` batch;
* browsers attached over WebSocket get the new timeline rows as JSON, through
  :class:`~hotline.fanout.Fanout` (bounded queue per client, slow ones dropped);
* other ``hotline`` processes on the same database get the same JSON through
  PostgreSQL ``NOTIFY`` on :data:`NOTIFY_CHANNEL`. The writer sends those
  notifications inside the transaction that writes the rows, so they are
  delivered exactly when, and only if, the rows commit. The receiving process
  (:mod:`hotline.notify`) hands them to :meth:`EventHub.receive`.

Only the timeline crosses processes: it is the record of what happened, and
every live view is built from it. Recordings to register and features' rows
stay with the process that saw them (it is the one that acts on them).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from hotline.facts import Committed, TimelineEntry
from hotline.fanout import Fanout
from hotline.logs import get_logger

log = get_logger(__name__)

NOTIFY_CHANNEL = "hotline_events"
NOTIFY_LIMIT = 7900            # bytes; PostgreSQL refuses payloads of 8000 or more
TOPIC_CALLS = "calls"          # every call's new timeline rows
TOPIC_AGENTS = "agents"        # agents' states and calls they did not answer (agents/)
TOPIC_QUEUES = "queues"        # the queue panel: callers waiting, agents free/busy (agents/)
TOPIC_TICKETS = "tickets"      # tickets opened, moved, assigned, reminded, escalated (tickets/)
# Messages a browser may be behind before it is dropped. The messages are shared by
# every client (one bytes object each), so this bounds memory to about
# BROWSER_QUEUE x NOTIFY_LIMIT whatever the number of clients; it is large because one
# commit under overload can hold thousands of rows (hundreds of messages).
BROWSER_QUEUE = 2048

Subscriber = Callable[[Committed], None]
LiveSubscriber = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class _Subscription:
    callback: Subscriber
    remote: bool


def entry_json(entry: TimelineEntry) -> dict[str, Any]:
    return {"linkedid": entry.linkedid, "uniqueid": entry.uniqueid,
            "occurred_at": entry.occurred_at.isoformat(), "kind": entry.kind,
            "detail": dict(entry.detail)}


class EventHub:
    def __init__(self, origin: str | None = None, browser_queue: int = BROWSER_QUEUE):
        self.origin = origin or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.browsers = Fanout(browser_queue)
        self._subscriptions: list[_Subscription] = []
        self._live: dict[str, list[LiveSubscriber]] = {}
        self.published = 0     # batches published, local and remote
        self.received = 0      # batches received from other processes

    def subscribe(self, callback: Subscriber, *, remote: bool = True) -> Callable[[], None]:
        """Call ``callback`` with every committed batch (``remote=False``: only
        this process's own). Callbacks run on the writer's task: decide, queue
        or start a task, never wait. Returns a function that unsubscribes."""
        subscription = _Subscription(callback, remote)
        self._subscriptions.append(subscription)
        return lambda: self._subscriptions.remove(subscription)

    def subscribe_live(self, topic: str, callback: LiveSubscriber) -> Callable[[], None]:
        """Call ``callback`` with every live message of ``topic`` (see
        :meth:`publish_live`), this process's and the other processes'. Same
        rules as :meth:`subscribe`: never wait. Returns the unsubscribe function."""
        self._live.setdefault(topic, []).append(callback)
        return lambda: self._live[topic].remove(callback)

    # -- the wire form, shared by NOTIFY and WebSocket ------------------------------

    def encode(self, timeline: Sequence[TimelineEntry]) -> list[str]:
        """JSON messages carrying ``timeline``, each small enough for NOTIFY. A row
        too large on its own is sent without its detail, marked ``truncated``
        (the database has it whole)."""
        envelope = json.dumps({"topic": TOPIC_CALLS, "origin": self.origin, "timeline": []},
                              ensure_ascii=False)
        head, tail = envelope[:-2], envelope[-2:]          # ... "timeline": [   |   ]}
        room = NOTIFY_LIMIT - len(envelope.encode())
        messages, parts, size = [], [], 0
        for entry in timeline:
            text = json.dumps(entry_json(entry), ensure_ascii=False, default=str)
            length = len(text.encode()) + 1
            if length > room:
                stub = {**entry_json(entry), "detail": {}, "truncated": True}
                text = json.dumps(stub, ensure_ascii=False, default=str)
                length = len(text.encode()) + 1
            if parts and size + length > room:
                messages.append(head + ",".join(parts) + tail)
                parts, size = [], 0
            parts.append(text)
            size += length
        if parts:
            messages.append(head + ",".join(parts) + tail)
        return messages

    # -- publishing -------------------------------------------------------------------

    def publish(self, committed: Committed, messages: Sequence[str] | None = None) -> None:
        """A batch this process committed (``messages``: its :meth:`encode`, if
        the writer already made it for NOTIFY)."""
        self.published += 1
        self._deliver(committed)
        if committed.timeline:
            for text in messages if messages is not None else self.encode(committed.timeline):
                self.browsers.publish(TOPIC_CALLS, text.encode())

    def publish_live(self, topic: str, message: Mapping[str, Any]) -> str:
        """A feature's live fact that is not a call's timeline row (an agent's
        state, the queue panel): encoded once as ``{"topic", "origin", ...message}``
        and delivered at once to this process's live subscribers of ``topic`` and
        its browsers. Returns the JSON text, for the feature to send to the other
        processes with NOTIFY (their :meth:`receive` publishes it there)."""
        payload = {"topic": topic, "origin": self.origin, **message}
        text = json.dumps(payload, ensure_ascii=False, default=str)
        self._deliver_live(topic, payload)
        self.browsers.publish(topic, text.encode())
        return text

    def receive(self, payload: str) -> None:
        """A NOTIFY payload from any process on the database; our own are skipped
        (they were published locally when they committed)."""
        try:
            message = json.loads(payload)
            if message.get("origin") == self.origin:
                return
            topic = str(message.get("topic", TOPIC_CALLS))
            if topic != TOPIC_CALLS:
                self.received += 1
                self._deliver_live(topic, message)
                self.browsers.publish(topic, payload.encode())
                return
            timeline = [_entry(item) for item in message["timeline"]]
        except (ValueError, KeyError, TypeError) as exc:
            log.error("hub.bad_notification", error=repr(exc), payload=payload[:200])
            return
        self.received += 1
        self.published += 1
        self._deliver(Committed(timeline=timeline, committed_at=0.0, origin=str(message["origin"]),
                                local=False))
        self.browsers.publish(str(message.get("topic", TOPIC_CALLS)), payload.encode())

    def _deliver_live(self, topic: str, message: Mapping[str, Any]) -> None:
        for callback in list(self._live.get(topic, ())):
            try:
                callback(message)
            except Exception:
                log.exception("hub.subscriber_failed", topic=topic,
                              subscriber=getattr(callback, "__qualname__", "?"))

    def _deliver(self, committed: Committed) -> None:
        for subscription in list(self._subscriptions):
            if not committed.local and not subscription.remote:
                continue
            try:
                subscription.callback(committed)
            except Exception:
                log.exception("hub.subscriber_failed",
                              subscriber=getattr(subscription.callback, "__qualname__", "?"))


def _entry(item: dict[str, Any]) -> TimelineEntry:
    return TimelineEntry(linkedid=item["linkedid"], uniqueid=item.get("uniqueid"),
                         occurred_at=datetime.fromisoformat(item["occurred_at"]), kind=item["kind"],
                         detail=item.get("detail") or {}, dedupe_key="")

"""Live messages to browsers: one bounded queue per WebSocket client.

A message is encoded once and the same bytes are queued for every client of
its topic, so a hundred consoles cost a hundred queue appends, not a hundred
encodings. Publishing never waits: a client whose queue is full (a slow
browser, a stalled network) is dropped and told why, and the publisher, which
runs on the AMI path, goes on at once.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Iterable

from hotline.logs import get_logger

log = get_logger(__name__)

_CLOSE = b""   # queued after the last message of a dropped client


class BrowserClient:
    def __init__(self, topics: frozenset[str], queue_size: int, address: str | None):
        self.topics = topics
        self.address = address
        self.dropped_reason: str | None = None
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size + 1)   # +1: room for _CLOSE
        self._limit = queue_size

    def offer(self, data: bytes) -> bool:
        """Queue a message; False (and the client is dropped) when it is behind."""
        if self.dropped_reason is not None:
            return False
        if self._queue.qsize() >= self._limit:
            self.drop(f"more than {self._limit} messages behind")
            return False
        self._queue.put_nowait(data)
        return True

    def drop(self, reason: str) -> None:
        if self.dropped_reason is None:
            self.dropped_reason = reason
            self._queue.put_nowait(_CLOSE)

    async def next_message(self) -> bytes | None:
        """The next message to send, or None once the client is dropped."""
        data = await self._queue.get()
        return None if data is _CLOSE else data


class Fanout:
    def __init__(self, queue_size: int):
        self.queue_size = queue_size
        self._clients: dict[str, set[BrowserClient]] = defaultdict(set)
        self.dropped = 0      # clients dropped for being too slow, since start

    def connect(self, topics: Iterable[str], address: str | None = None) -> BrowserClient:
        client = BrowserClient(frozenset(topics), self.queue_size, address)
        for topic in client.topics:
            self._clients[topic].add(client)
        return client

    def disconnect(self, client: BrowserClient) -> None:
        for topic in client.topics:
            self._clients[topic].discard(client)

    def publish(self, topic: str, data: bytes) -> None:
        for client in list(self._clients.get(topic, ())):
            if not client.offer(data):
                self.disconnect(client)
                self.dropped += 1
                log.warning("fanout.client_dropped", topic=topic, address=client.address,
                            reason=client.dropped_reason)

    def clients(self, topic: str | None = None) -> int:
        if topic is not None:
            return len(self._clients.get(topic, ()))
        return len({c for clients in self._clients.values() for c in clients})

    def close_all(self, reason: str) -> None:
        for client in {c for clients in self._clients.values() for c in clients}:
            client.drop(reason)
        self._clients.clear()

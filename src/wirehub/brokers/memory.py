"""The in-process broker: the default, for one node.

History is bounded by count and age. The epoch is random per broker instance,
so a restarted server tells clients that the history they knew is gone.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from typing import Any

from .base import Broker, Publication, StreamPosition

__all__ = ["MemoryBroker"]


class _Stream:
    __slots__ = ("items", "offset")

    def __init__(self) -> None:
        self.offset = 0
        self.items: deque[Publication] = deque()


class MemoryBroker(Broker):
    """Publications never leave the process; history is kept per channel."""

    def __init__(self, *, history_size: int = 300, history_ttl: float = 120.0) -> None:
        self.epoch = secrets.token_hex(4)
        self.history_size = history_size
        self.history_ttl = history_ttl
        self._streams: dict[str, _Stream] = {}
        self._subscribed: set[str] = set()

    async def publish(self, channel: str, data: Any, *, client: str | None = None) -> Publication:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream()
        stream.offset += 1
        now_ms = int(time.time() * 1000)
        pub = Publication(channel, data, stream.offset, self.epoch, client, now_ms)
        if self.history_size > 0:
            stream.items.append(pub)
            self._trim(stream, now_ms)
        if channel in self._subscribed and self._handler is not None:
            self._handler(pub)
        return pub

    def _trim(self, stream: _Stream, now_ms: int) -> None:
        items = stream.items
        while len(items) > self.history_size:
            items.popleft()
        horizon = now_ms - self.history_ttl * 1000
        while items and items[0].ts < horizon:
            items.popleft()

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def position(self, channel: str) -> StreamPosition:
        stream = self._streams.get(channel)
        return StreamPosition(stream.offset if stream else 0, self.epoch)

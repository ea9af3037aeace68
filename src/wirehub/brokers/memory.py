"""The in-process broker: the default, for one node.

History is bounded by count and age, per channel as the namespace asks. The
epoch is random per broker instance, so a restarted server tells clients that
the history they knew is gone.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from typing import Any

from .base import Broker, History, Publication, StreamPosition

__all__ = ["MemoryBroker"]


class _Stream:
    __slots__ = ("items", "offset", "size", "ttl_ms")

    def __init__(self) -> None:
        self.offset = 0
        self.items: deque[Publication] = deque()
        self.size = 0
        self.ttl_ms = 0.0

    def trim(self, now_ms: int) -> None:
        items = self.items
        while len(items) > self.size:
            items.popleft()
        horizon = now_ms - self.ttl_ms
        while items and items[0].ts < horizon:
            items.popleft()


class MemoryBroker(Broker):
    """Publications never leave the process; history is kept per channel."""

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(4)
        self._streams: dict[str, _Stream] = {}
        self._subscribed: set[str] = set()
        self._presence: dict[str, dict[str, dict[str, Any]]] = {}

    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        client: str | None = None,
        history_size: int = 300,
        history_ttl: float = 120.0,
    ) -> Publication:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream()
        stream.offset += 1
        now_ms = int(time.time() * 1000)
        pub = Publication(channel, data, stream.offset, self.epoch, client, now_ms)
        if history_size > 0:
            stream.size, stream.ttl_ms = history_size, history_ttl * 1000
            stream.items.append(pub)
            stream.trim(now_ms)
        elif stream.items:
            stream.items.clear()
        if channel in self._subscribed and self._handler is not None:
            self._handler.on_publication(pub)
        return pub

    async def publish_event(self, channel: str, event: dict[str, Any]) -> None:
        if channel in self._subscribed and self._handler is not None:
            self._handler.on_event(channel, event)

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def position(self, channel: str) -> StreamPosition:
        stream = self._streams.get(channel)
        return StreamPosition(stream.offset if stream else 0, self.epoch)

    async def history(
        self, channel: str, *, since: int | None = None, limit: int | None = None
    ) -> History:
        stream = self._streams.get(channel)
        if stream is None:
            return History([], 0, self.epoch, complete=since is None or since == 0)
        stream.trim(int(time.time() * 1000))
        items = stream.items
        if since is None:
            pubs = list(items)
            if limit is not None:
                pubs = pubs[-limit:] if limit > 0 else []
            return History(pubs, stream.offset, self.epoch)
        first = items[0].offset if items else stream.offset + 1
        complete = first <= since + 1 and since <= stream.offset
        pubs = [p for p in items if p.offset > since] if complete else []
        if limit is not None:
            pubs = pubs[:limit]
        return History(pubs, stream.offset, self.epoch, complete=complete)

    async def add_presence(self, channel: str, client: str, entry: dict[str, Any]) -> None:
        self._presence.setdefault(channel, {})[client] = entry

    async def remove_presence(self, channel: str, client: str) -> None:
        entries = self._presence.get(channel)
        if entries is not None:
            entries.pop(client, None)
            if not entries:
                del self._presence[channel]

    async def presence(self, channel: str) -> dict[str, dict[str, Any]]:
        return dict(self._presence.get(channel, {}))

"""The in-process broker: the default, for one node.

History is bounded by count and age, per channel as the namespace asks. The
epoch is random per broker instance, so a restarted server tells clients that
the history they knew is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from typing import Any

from .base import Broker, History, Publication, StreamPosition

__all__ = ["MemoryBroker"]


class _Stream:
    __slots__ = ("bytes", "items", "offset", "size", "sizes", "ttl_ms")

    def __init__(self) -> None:
        self.offset = 0
        self.items: deque[Publication] = deque()
        self.sizes: deque[int] = deque()  #: approximate bytes of each item
        self.bytes = 0
        self.size = 0
        self.ttl_ms = 0.0

    def pop_oldest(self) -> int:
        self.items.popleft()
        freed = self.sizes.popleft()
        self.bytes -= freed
        return freed

    def trim(self, now_ms: int) -> int:
        """Drop what is over the count or past the age; return the bytes freed."""
        freed = 0
        items = self.items
        while len(items) > self.size:
            freed += self.pop_oldest()
        horizon = now_ms - self.ttl_ms
        while items and items[0].ts < horizon:
            freed += self.pop_oldest()
        return freed


class MemoryBroker(Broker):
    """Publications never leave the process; history is kept per channel."""

    def __init__(self, *, history_max_bytes: int = 16 * 1024 * 1024,
                 sweep_interval: float = 5.0) -> None:
        self.epoch = secrets.token_hex(4)
        #: all channels' history together stays under this many (approximate) bytes:
        #: past it, the oldest messages of the largest histories go first
        self.history_max_bytes = history_max_bytes
        self.history_bytes = 0
        self.sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None
        self._streams: dict[str, _Stream] = {}
        self._subscribed: set[str] = set()
        self._presence: dict[str, dict[str, dict[str, Any]]] = {}

    async def start(self) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep_loop())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _sweep_loop(self) -> None:
        """Apply the age limit to channels nobody publishes to any more."""
        while True:
            await asyncio.sleep(self.sweep_interval)  # a period, not an event
            now_ms = int(time.time() * 1000)
            for stream in list(self._streams.values()):
                self.history_bytes -= stream.trim(now_ms)

    def _evict(self) -> None:
        """Over the byte budget: drop the oldest messages of the largest histories."""
        target = self.history_max_bytes * 0.9
        streams = sorted(self._streams.values(), key=lambda st: st.bytes, reverse=True)
        for stream in streams:
            while stream.items and self.history_bytes > target:
                self.history_bytes -= stream.pop_oldest()
            if self.history_bytes <= target:
                return

    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        client: str | None = None,
        history_size: int = 300,
        history_ttl: float = 120.0,
        size: int = 0,
    ) -> Publication:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream()
        stream.offset += 1
        now_ms = int(time.time() * 1000)
        pub = Publication(channel, data, stream.offset, self.epoch, client, now_ms)
        if history_size > 0:
            stream.size, stream.ttl_ms = history_size, history_ttl * 1000
            cost = size + 200  # the Publication and its bookkeeping
            stream.items.append(pub)
            stream.sizes.append(cost)
            stream.bytes += cost
            self.history_bytes += cost - stream.trim(now_ms)
            if self.history_bytes > self.history_max_bytes:
                self._evict()
        elif stream.items:
            self.history_bytes -= stream.bytes
            stream.items.clear()
            stream.sizes.clear()
            stream.bytes = 0
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
        self.history_bytes -= stream.trim(int(time.time() * 1000))
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

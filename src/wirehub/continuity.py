"""Keeping each channel's deliveries on this node in order and without gaps.

Between nodes, messages travel over the broker's pub/sub, which may lose some
(a broker outage, a dropped pub/sub connection). Every publication carries
its channel's offset and epoch, so the node can tell:

* offset = last + 1: deliver;
* offset <= last: a duplicate, drop it;
* offset > last + 1, or the broker reconnected: a gap. Hold the channel's new
  publications, read the missing ones from history, deliver them in order,
  then the held ones;
* the gap is not in history any more, or the epoch changed: subscribers on
  this node cannot be made whole here. They are closed with 4003 (retryable),
  reconnect, and recover with ``since``, which tells them ``recovered: false``
  if it must. Never silently.
* the broker reconnected on a channel this node has not delivered anything
  on yet: there is no offset to repair from (the subscribers' positions came
  from their subscribe replies), so they are sent to recover the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .brokers.base import Broker, Publication

__all__ = ["Continuity"]

log = logging.getLogger("wirehub.continuity")


class Continuity:
    def __init__(self, broker: Broker, deliver: Callable[[Publication], None],
                 resync: Callable[[str], None]) -> None:
        self._broker = broker
        self._deliver = deliver
        self._resync = resync
        self._last: dict[str, tuple[str, int]] = {}
        self._held: dict[str, list[Publication]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._repairs: dict[str, object] = {}  # channel -> token of the repair under way
        self._again: set[str] = set()  # reconnected during a repair: repair once more
        self.repaired = 0  #: publications fetched from history to close gaps
        self.resyncs = 0  #: channels whose subscribers had to be sent to recover

    def accept(self, pub: Publication) -> None:
        channel = pub.channel
        held = self._held.get(channel)
        if held is not None:
            held.append(pub)
            return
        last = self._last.get(channel)
        if last is not None:
            epoch, offset = last
            if pub.epoch != epoch:
                log.warning("channel %s: epoch changed (%s -> %s); subscribers must resync",
                            channel, epoch, pub.epoch)
                self._last[channel] = (pub.epoch, pub.offset)
                self.resyncs += 1
                self._resync(channel)
                return
            if pub.offset <= offset:
                return  # duplicate
            if pub.offset > offset + 1:
                log.warning("channel %s: gap after offset %d (got %d); repairing",
                            channel, offset, pub.offset)
                self._start_repair(channel, [pub])
                return
        self._last[channel] = (pub.epoch, pub.offset)
        self._deliver(pub)

    def broker_reconnected(self, channels: set[str]) -> None:
        """The broker's pub/sub came back: whatever was published meanwhile is missing."""
        for channel in channels:
            if channel in self._held:
                self._again.add(channel)  # the repair under way may have read history too early
            elif channel in self._last:
                self._start_repair(channel, [])
            else:
                self.resyncs += 1
                self._resync(channel)

    def forget(self, channel: str) -> None:
        """The node stopped listening to ``channel`` (a repair under way is abandoned)."""
        self._last.pop(channel, None)
        self._held.pop(channel, None)
        self._repairs.pop(channel, None)
        self._again.discard(channel)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _start_repair(self, channel: str, held: list[Publication]) -> None:
        self._held[channel] = held
        epoch, offset = self._last[channel]
        token = self._repairs[channel] = object()
        task = asyncio.ensure_future(self._repair(channel, epoch, offset, token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _repair(self, channel: str, epoch: str, offset: int, token: object) -> None:
        try:
            hist = await self._broker.history(channel, since=offset)
        except Exception as exc:  # the broker is still unwell: let clients recover later
            log.warning("channel %s: reading history to repair a gap failed: %s", channel, exc)
            hist = None
        if self._repairs.get(channel) is not token:
            return  # forgotten meanwhile
        del self._repairs[channel]
        held = self._held.pop(channel, [])
        again = channel in self._again
        self._again.discard(channel)
        if hist is None or not hist.complete or hist.epoch != epoch:
            self._last.pop(channel, None)
            self.resyncs += 1
            self._resync(channel)
            return
        last = offset
        for pub in hist.publications:
            if pub.epoch == epoch and pub.offset == last + 1:
                self._deliver(pub)
                last = pub.offset
                self.repaired += 1
        for pub in sorted(held, key=lambda p: p.offset):  # then what arrived meanwhile
            if pub.epoch == epoch and pub.offset == last + 1:
                self._deliver(pub)
                last = pub.offset
        self._last[channel] = (epoch, last)
        newest = max((p.offset for p in held), default=0)
        if again or newest > last or any(p.epoch != epoch for p in held):
            self._start_repair(channel, [])  # still short, or the stream moved on meanwhile

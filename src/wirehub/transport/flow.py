"""Per-subscription delivery control: rate caps and slow-consumer policies.

A :class:`Flow` exists only for subscriptions that need one (a ``max_rate``,
or a namespace whose slow-consumer policy is not ``disconnect``), so the
common path pays one dict lookup.

* ``max_rate``: at most that many messages per second reach the client; in
  between, only the newest waits (conflation), so an older value never
  follows a newer one.
* ``conflate``: when the client's queue is backed up, only the newest message
  of the channel waits; it is queued once the queue has drained.
* ``drop_oldest``: when the queue is full, the channel's oldest queued
  messages are dropped to make room.
"""

from __future__ import annotations

import asyncio

from ..core.namespaces import SlowConsumerPolicy

__all__ = ["Flow"]


class Flow:
    __slots__ = ("channel", "interval", "last_sent", "pending", "policy", "timer")

    def __init__(self, channel: str, max_rate: float | None,
                 policy: SlowConsumerPolicy) -> None:
        self.channel = channel
        self.interval = 1.0 / max_rate if max_rate else 0.0
        self.policy = policy
        self.last_sent = -1e18
        #: the newest message waiting for its turn: (payload, binary)
        self.pending: tuple[bytes, bool] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.pending = None

"""The feed loop: paces a tick source and publishes its ticks.

Every ``interval`` seconds (default 20 ms) the loop asks the :class:`Pacer`
how many ticks are due -- ``rate`` times the time elapsed, the fraction
carried over -- takes that many from the source and publishes each on
``stocks:<SYMBOL>``. Batching keeps the cost per tick low enough for 100,000
ticks/s: one timer wake-up per batch, not per tick. Measuring the elapsed time
(instead of assuming the sleep lasted exactly ``interval``) keeps the average
rate right when wake-ups are late; after a long stall the backlog is capped at
``max_lag`` seconds of ticks rather than released as one huge burst.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...exceptions import ConfigError, WirehubError
from ...tasks import raise_if_cancelling
from .source import TickSource
from .tick import Tick

__all__ = ["CHANNEL_PREFIX", "Pacer", "Publish", "StockFeed"]

log = logging.getLogger("wirehub.apps.stocks")

#: ticks of symbol S go to channel ``stocks:S``
CHANNEL_PREFIX = "stocks:"
#: publish(channel, data), e.g. :meth:`wirehub.App.publish`
Publish = Callable[[str, Any], Awaitable[Any]]
#: let other tasks (client reads and writes) run after this many publishes
_YIELD_EVERY = 512


class Pacer:
    """How many ticks are due at time ``now``: ``rate`` per second, fractions carried."""

    __slots__ = ("_last", "_owed", "max_lag", "rate")

    def __init__(self, rate: float, *, start: float, max_lag: float = 0.25) -> None:
        if rate <= 0:
            raise ConfigError("rate", rate, "ticks per second > 0")
        self.rate = float(rate)
        self.max_lag = max_lag
        self._last = start
        self._owed = 0.0

    def due(self, now: float) -> int:
        """Ticks to produce now, for the time since the previous call (or ``start``)."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        owed = min(self._owed + elapsed * self.rate, max(1.0, self.rate * self.max_lag))
        # the epsilon absorbs float error: 1000/s * (0.04 - 0.02) is 19.999999999999996
        count = int(owed + 1e-9)
        self._owed = max(0.0, owed - count)
        return count


class StockFeed:
    """Drives ``source`` at ``rate`` ticks/s; keeps the latest tick of each symbol."""

    def __init__(self, source: TickSource, *, rate: float = 1000.0,
                 interval: float = 0.02, max_lag: float = 0.25) -> None:
        if rate <= 0:
            raise ConfigError("rate", rate, "ticks per second > 0")
        if interval <= 0:
            raise ConfigError("interval", interval, "seconds > 0")
        self.source = source
        self.rate = float(rate)
        self.interval = interval
        self.max_lag = max_lag
        self.latest: dict[str, Tick] = {}
        self.published = 0  #: ticks published
        self.batches = 0  #: batches taken from the source
        self.failed = 0  #: ticks the broker refused or never got
        self.running = False

    def __repr__(self) -> str:
        return f"<StockFeed {self.source!r} rate={self.rate:g}/s published={self.published}>"

    @property
    def batch_size(self) -> float:
        """Ticks per batch on average: ``rate * interval``."""
        return self.rate * self.interval

    def stats(self) -> dict[str, Any]:
        """Counters for tests and metrics."""
        return {
            "published": self.published,
            "batches": self.batches,
            "failed": self.failed,
            "rate": self.rate,
            "interval": self.interval,
            "symbols": len(self.source.opens()),
            "running": self.running,
        }

    async def run(self, publish: Publish) -> None:
        """Publish ticks until cancelled or the source is exhausted.

        A cancel is honoured even if a publish swallowed it (Python 3.11's
        ``wait_for`` in redis-py, see :mod:`wirehub.tasks`): that kept the feed
        publishing after shutdown and the process hanging in ``asyncio.run``.
        """
        loop = asyncio.get_running_loop()
        clock = loop.time
        pacer = Pacer(self.rate, start=clock(), max_lag=self.max_lag)
        deadline = clock()
        self.running = True
        try:
            while not self.source.exhausted:
                raise_if_cancelling()
                deadline += self.interval
                delay = deadline - clock()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing, not waiting for an event
                else:  # behind schedule: start a fresh one instead of bursting to catch up
                    deadline = clock()
                    await asyncio.sleep(0)
                batch = self.source.next_batch(pacer.due(clock()), time.time_ns() // 1_000_000)
                await self.publish_batch(batch, publish)
            log.info("stocks feed: source exhausted after %d ticks", self.published)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stocks feed stopped by a bug after %d ticks", self.published)
        finally:
            self.running = False

    async def publish_batch(self, batch: list[Tick], publish: Publish) -> None:
        """Publish ``batch`` tick by tick; a broker failure drops the rest of the batch."""
        self.batches += 1
        latest, prefix = self.latest, CHANNEL_PREFIX
        for n, tick in enumerate(batch, 1):
            try:
                await publish(prefix + tick.symbol, tick.as_dict())
            except WirehubError as exc:
                self.failed += len(batch) - n + 1
                log.warning("stocks feed: dropped %d ticks: %s", len(batch) - n + 1, exc)
                return
            latest[tick.symbol] = tick
            self.published += 1
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)

    def watchlist(self, names: Callable[[str], str | None]) -> list[dict[str, Any]]:
        """Every symbol with its latest price (the opening price before its first tick)."""
        out = []
        for symbol, open_price in self.source.opens().items():
            tick = self.latest.get(symbol)
            out.append({
                "symbol": symbol,
                "name": names(symbol),
                "price": tick.price if tick else open_price,
                "open": open_price,
                "change": tick.change if tick else 0.0,
                "change_pct": tick.change_pct if tick else 0.0,
                "ts": tick.ts if tick else None,
            })
        return out

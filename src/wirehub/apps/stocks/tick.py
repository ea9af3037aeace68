"""One trade print of the stock feed, and the price arithmetic every source shares.

Prices are quoted in the tick sizes of SEC Regulation NMS Rule 612: $0.01 at or
above $1.00, $0.0001 below. ``change`` and ``change_pct`` compare the price with
the session's opening price (a simulator's initial price, a replay's first
price per symbol); ``change_pct`` is in percent.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["SUB_DOLLAR_TICK", "TICK", "Tick", "make_tick", "round_price", "tick_size"]

#: tick size of a price >= $1.00
TICK = 0.01
#: tick size of a price below $1.00
SUB_DOLLAR_TICK = 0.0001


def tick_size(price: float) -> float:
    """The minimum price increment for ``price`` (Rule 612)."""
    return TICK if price >= 1.0 else SUB_DOLLAR_TICK


def round_price(price: float) -> float:
    """``price`` rounded to its tick size; never below one sub-dollar tick."""
    if price >= 1.0:
        rounded = round(price, 2)
        if rounded >= 1.0:
            return rounded
    rounded = round(price, 4)
    return rounded if rounded > 0.0 else SUB_DOLLAR_TICK


class Tick(msgspec.Struct, frozen=True, gc=False):
    """A trade: ``volume`` shares of ``symbol`` at ``price``, at ``ts`` ms since the epoch."""

    symbol: str
    price: float
    change: float
    change_pct: float
    volume: int
    ts: int

    def as_dict(self) -> dict[str, Any]:
        """The message published on ``stocks:<symbol>``."""
        return {
            "symbol": self.symbol,
            "price": self.price,
            "change": self.change,
            "change_pct": self.change_pct,
            "volume": self.volume,
            "ts": self.ts,
        }


def make_tick(symbol: str, price: float, open_price: float, volume: int, ts: int) -> Tick:
    """A tick at ``price`` (already rounded) with its change against ``open_price``."""
    diff = price - open_price
    return Tick(symbol, price, round(diff, 4), round(diff / open_price * 100.0, 2), volume, ts)

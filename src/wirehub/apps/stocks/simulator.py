"""A simulated market: geometric Brownian motion prices for a universe of stocks.

Each tick picks a symbol at random in proportion to its activity ``weight``,
moves its price one GBM step and draws a trade size::

    S' = S * exp((mu - sigma**2 / 2) * dt + sigma * sqrt(dt) * Z),   Z ~ N(0, 1)

``mu`` and ``sigma`` are annualised; ``dt`` is the market time between two
ticks of the symbol, in trading years: at ``rate`` ticks per second in all, a
symbol with share ``w`` of the activity prints every ``1 / (rate * w)``
seconds, times ``speed`` (market seconds per wall-clock second). The exact
price is carried between ticks and only the published price is rounded to the
tick size, so sub-tick moves add up instead of being rounded away.

The sequence of (symbol, price, volume) depends only on the seed, never on how
it is cut into batches: every tick draws its random numbers in the same order.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence

from ...exceptions import ConfigError
from .tick import Tick, make_tick, round_price
from .universe import UNIVERSE, SymbolSpec

__all__ = ["TRADING_SECONDS_PER_DAY", "TRADING_SECONDS_PER_YEAR", "Simulator"]

#: one regular session, 09:30-16:00
TRADING_SECONDS_PER_DAY = 6.5 * 3600
#: 252 sessions a year
TRADING_SECONDS_PER_YEAR = 252 * TRADING_SECONDS_PER_DAY


class Simulator:
    """A seeded GBM market of ``specs`` (default: the built-in :data:`UNIVERSE`)."""

    def __init__(
        self,
        *,
        rate: float = 1000.0,
        seed: int | None = None,
        symbols: Iterable[str] | None = None,
        specs: Sequence[SymbolSpec] | None = None,
        speed: float = 1.0,
    ) -> None:
        if rate <= 0:
            raise ConfigError("rate", rate, "ticks per second > 0")
        if speed <= 0:
            raise ConfigError("speed", speed, "market seconds per second > 0")
        chosen = _select(specs if specs is not None else UNIVERSE, symbols)
        self.rate = float(rate)
        self.speed = float(speed)
        self.seed = seed
        self.specs: tuple[SymbolSpec, ...] = chosen
        self._rng = random.Random(seed)
        self._symbols = [s.symbol for s in chosen]
        self._opens = {s.symbol: round_price(s.price) for s in chosen}
        self._open_list = [self._opens[s.symbol] for s in chosen]
        self._log_price = [math.log(s.price) for s in chosen]
        total = sum(s.weight for s in chosen)
        self._cum_weights = list(itertools.accumulate(s.weight / total for s in chosen))
        self._cum_weights[-1] = 1.0  # random() < 1.0, so bisect never runs off the end
        self._dt = [self.speed / (self.rate * s.weight / total) / TRADING_SECONDS_PER_YEAR
                    for s in chosen]
        self._drift_step = [(s.drift - s.volatility**2 / 2) * dt
                            for s, dt in zip(chosen, self._dt, strict=True)]
        self._vol_step = [s.volatility * math.sqrt(dt)
                          for s, dt in zip(chosen, self._dt, strict=True)]
        self.generated = 0

    def __repr__(self) -> str:
        return f"<Simulator {len(self.specs)} symbols rate={self.rate:g}/s seed={self.seed}>"

    @property
    def exhausted(self) -> bool:
        """Never: a simulated market trades forever."""
        return False

    def opens(self) -> Mapping[str, float]:
        """Symbol -> opening (initial) price, rounded to the tick size."""
        return self._opens

    def resume(self, prices: Mapping[str, float]) -> int:
        """Carry on from ``prices`` (symbol -> last traded price); return how many were taken.

        A node that takes the feed over from another one resumes from the
        latest ticks in the broker instead of jumping back to the opening
        prices. Opening prices (the base of ``change``) stay; unknown symbols
        and prices that are not positive numbers are ignored.
        """
        index = {sym: i for i, sym in enumerate(self._symbols)}
        taken = 0
        for symbol, price in prices.items():
            i = index.get(symbol)
            if i is not None and isinstance(price, int | float) and math.isfinite(price) \
                    and price > 0:
                self._log_price[i] = math.log(price)
                taken += 1
        return taken

    def dt(self, symbol: str) -> float:
        """Trading years between two ticks of ``symbol``."""
        return self._dt[self._symbols.index(symbol)]

    def next_batch(self, count: int, now_ms: int) -> list[Tick]:
        """Simulate ``count`` more trades, all stamped ``now_ms``."""
        rng = self._rng
        rand, gauss, lognormal = rng.random, rng.gauss, rng.lognormvariate
        pick, cum = bisect.bisect_right, self._cum_weights
        log_price, drift, vol = self._log_price, self._drift_step, self._vol_step
        symbols, opens = self._symbols, self._open_list
        exp, tick = math.exp, make_tick
        out: list[Tick] = []
        append = out.append
        for _ in range(count):
            i = pick(cum, rand())
            lp = log_price[i] = log_price[i] + drift[i] + vol[i] * gauss(0.0, 1.0)
            # round lots, lognormal: mostly 100-300 shares, now and then thousands
            volume = 100 * (1 + int(lognormal(0.0, 1.0)))
            append(tick(symbols[i], round_price(exp(lp)), opens[i], volume, now_ms))
        self.generated += count
        return out


def _select(specs: Sequence[SymbolSpec], symbols: Iterable[str] | None) -> tuple[SymbolSpec, ...]:
    if symbols is None:
        chosen = tuple(specs)
    else:
        known = {s.symbol: s for s in specs}
        wanted = list(dict.fromkeys(symbols))
        missing = [sym for sym in wanted if sym not in known]
        if missing:
            raise ConfigError("symbols", missing, "symbols of the simulator's universe")
        chosen = tuple(known[sym] for sym in wanted)
    if not chosen:
        raise ConfigError("symbols", [], "at least one symbol")
    return chosen

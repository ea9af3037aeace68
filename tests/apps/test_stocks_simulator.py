"""The GBM simulator: seeded determinism, its universe, tick sizes, return statistics."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from wirehub.apps.stocks import (
    TRADING_SECONDS_PER_DAY,
    UNIVERSE,
    Simulator,
    SymbolSpec,
    TickSource,
    tick_size,
)
from wirehub.exceptions import ConfigError


def trades(sim: Simulator, count: int, batch: int = 1000) -> list[tuple[str, float, int]]:
    out: list[tuple[str, float, int]] = []
    while len(out) < count:
        out += [(t.symbol, t.price, t.volume) for t in sim.next_batch(min(batch, count - len(out)),
                                                                        0)]
    return out


def log_returns(prices: list[float]) -> list[float]:
    return [math.log(b / a) for a, b in itertools.pairwise(prices)]


def test_same_seed_same_sequence() -> None:
    """Two simulators with one seed produce the same (symbol, price, volume) sequence."""
    assert trades(Simulator(seed=42), 5000) == trades(Simulator(seed=42), 5000)


def test_different_seeds_differ() -> None:
    """Another seed gives another market."""
    assert trades(Simulator(seed=1), 500) != trades(Simulator(seed=2), 500)


def test_sequence_does_not_depend_on_batch_sizes() -> None:
    """Cutting the stream into other batches (as pacing jitter does) changes nothing."""
    whole = trades(Simulator(seed=7), 3000, batch=3000)
    sim, rng, pieces = Simulator(seed=7), random.Random(0), []
    while len(pieces) < 3000:
        n = min(rng.randint(0, 97), 3000 - len(pieces))
        pieces += [(t.symbol, t.price, t.volume) for t in sim.next_batch(n, 0)]
    assert pieces == whole


def test_universe_has_at_least_fifty_unique_symbols() -> None:
    """The built-in universe lists >= 50 distinct tickers with names and prices."""
    symbols = [spec.symbol for spec in UNIVERSE]
    assert len(symbols) >= 50
    assert len(set(symbols)) == len(symbols)
    assert {"AAPL", "MSFT", "NVDA", "TSLA"} <= set(symbols)
    assert all(spec.name and spec.price > 0 and spec.volatility > 0 for spec in UNIVERSE)


def test_simulator_is_a_tick_source_and_opens_every_symbol() -> None:
    """The simulator implements TickSource and opens at each symbol's initial price."""
    sim = Simulator(seed=0)
    assert isinstance(sim, TickSource)
    assert not sim.exhausted
    assert list(sim.opens()) == [spec.symbol for spec in UNIVERSE]
    assert sim.opens()["AAPL"] == 189.50


def test_every_symbol_trades() -> None:
    """Over enough ticks every symbol of the universe prints."""
    seen = {symbol for symbol, _, _ in trades(Simulator(seed=3), 20_000)}
    assert seen == {spec.symbol for spec in UNIVERSE}


def test_prices_positive_and_on_the_tick_grid() -> None:
    """Every price is > 0 and a multiple of its tick size ($0.01, or $0.0001 below $1)."""
    sim = Simulator(seed=5, speed=TRADING_SECONDS_PER_DAY)  # fast market: big moves
    sub_dollar = 0
    for tick in sim.next_batch(50_000, 0):
        assert tick.price > 0
        step = tick_size(tick.price)
        units = tick.price / step
        assert abs(units - round(units)) < 1e-6, tick
        sub_dollar += tick.price < 1
    assert sub_dollar > 0  # the sub-dollar names exercise the $0.0001 grid


def test_volumes_are_round_lots() -> None:
    """Trade sizes are positive multiples of 100 shares, mostly small, some large."""
    volumes = [t.volume for t in Simulator(seed=9).next_batch(20_000, 0)]
    assert all(v >= 100 and v % 100 == 0 for v in volumes)
    assert statistics.median(volumes) <= 300
    assert max(volumes) >= 2000


def test_change_is_against_the_opening_price() -> None:
    """change and change_pct of each tick compare its price with the symbol's open."""
    sim = Simulator(seed=11)
    opens = sim.opens()
    for tick in sim.next_batch(2000, 0):
        open_price = opens[tick.symbol]
        assert tick.change == pytest.approx(tick.price - open_price, abs=1e-9)
        assert tick.change_pct == pytest.approx((tick.price / open_price - 1) * 100, abs=0.005)


def test_ticks_carry_the_given_timestamp() -> None:
    """A batch is stamped with the ms timestamp the feed passes in."""
    assert {t.ts for t in Simulator(seed=0).next_batch(10, 1_767_364_200_000)} == {
        1_767_364_200_000}


def test_dt_follows_rate_weight_and_speed() -> None:
    """A symbol's dt is speed / (rate * its activity share), in trading years."""
    specs = [SymbolSpec("AAA", "A", 10.0, 0.2, weight=3), SymbolSpec("BBB", "B", 10.0, 0.2)]
    sim = Simulator(rate=100.0, specs=specs, speed=60.0)
    year = 252 * TRADING_SECONDS_PER_DAY
    assert sim.dt("AAA") == pytest.approx(60.0 / (100.0 * 0.75) / year)
    assert sim.dt("BBB") == pytest.approx(60.0 / (100.0 * 0.25) / year)
    assert Simulator(rate=1000.0).dt("AAPL") == pytest.approx(Simulator(rate=100.0).dt("AAPL")
                                                              / 10)


def test_gbm_log_returns_match_drift_and_volatility() -> None:
    """Daily log-returns have mean (mu - sigma^2/2) dt and deviation sigma sqrt(dt)."""
    mu, sigma, n = 0.10, 0.20, 20_000
    spec = SymbolSpec("GBM", "Test", 100.0, sigma, drift=mu)
    # one symbol at one tick a second, one trading day a second: dt = 1/252
    sim = Simulator(rate=1.0, specs=[spec], speed=TRADING_SECONDS_PER_DAY, seed=2024)
    assert sim.dt("GBM") == pytest.approx(1 / 252)
    prices = [100.0] + [t.price for t in sim.next_batch(n, 0)]
    returns = log_returns(prices)
    dt = 1 / 252
    sigma_hat = statistics.stdev(returns) / math.sqrt(dt)
    mu_hat = statistics.fmean(returns) / dt + sigma_hat**2 / 2
    assert sigma_hat == pytest.approx(sigma, rel=0.05)
    # the drift estimate's standard error is sigma / sqrt(n dt) = 0.0225
    assert mu_hat == pytest.approx(mu, abs=0.08)


def test_each_symbol_has_its_own_volatility() -> None:
    """In a mixed market each symbol's annualised vol matches its spec."""
    specs = [SymbolSpec("CALM", "Calm", 50.0, 0.10, weight=2),
             SymbolSpec("WILD", "Wild", 50.0, 0.80, weight=1)]
    sim = Simulator(rate=10.0, specs=specs, speed=TRADING_SECONDS_PER_DAY, seed=99)
    prices: dict[str, list[float]] = {"CALM": [50.0], "WILD": [50.0]}
    for tick in sim.next_batch(30_000, 0):
        prices[tick.symbol].append(tick.price)
    for spec in specs:
        returns = log_returns(prices[spec.symbol])
        vol = statistics.stdev(returns) / math.sqrt(sim.dt(spec.symbol))
        assert vol == pytest.approx(spec.volatility, rel=0.05), spec.symbol


def test_symbols_narrow_the_universe() -> None:
    """symbols= keeps only those tickers, in the order given."""
    sim = Simulator(seed=0, symbols=["TSLA", "AAPL"])
    assert list(sim.opens()) == ["TSLA", "AAPL"]
    assert {t.symbol for t in sim.next_batch(500, 0)} == {"TSLA", "AAPL"}


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"symbols": ["AAPL", "NOPE"]}, "symbols"),
    ({"symbols": []}, "symbols"),
    ({"rate": 0}, "rate"),
    ({"speed": -1}, "speed"),
])
def test_bad_settings_name_the_key(kwargs: dict[str, object], key: str) -> None:
    """Invalid settings raise ConfigError naming the setting."""
    with pytest.raises(ConfigError) as info:
        Simulator(**kwargs)  # type: ignore[arg-type]
    assert info.value.key == key


def test_resume_carries_on_from_the_given_prices() -> None:
    """A new leader resumes from the latest ticks: prices continue, opens stay the base."""
    sim = Simulator(seed=4, symbols=["AAPL", "TSLA"])
    taken = sim.resume({"AAPL": 400.0, "TSLA": float("nan"), "NOPE": 1.0, "MSFT": -3})
    assert taken == 1  # TSLA's price is not a number, the others are not in this market
    ticks = sim.next_batch(200, 0)
    aapl = [t for t in ticks if t.symbol == "AAPL"]
    tsla = [t for t in ticks if t.symbol == "TSLA"]
    assert aapl and tsla
    assert aapl[0].price == pytest.approx(400.0, rel=0.01)
    assert aapl[0].change == pytest.approx(aapl[0].price - sim.opens()["AAPL"], abs=0.01)
    assert tsla[0].price == pytest.approx(sim.opens()["TSLA"], rel=0.01)  # not resumed

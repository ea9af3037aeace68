"""Ticks: tick sizes, price rounding, change against the open, the published dict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirehub.apps.stocks import Tick, round_price, tick_size
from wirehub.apps.stocks.tick import make_tick


def is_multiple(price: float, step: float) -> bool:
    units = price / step
    return abs(units - round(units)) < 1e-6


@pytest.mark.parametrize(("price", "step"), [(1.0, 0.01), (187.3, 0.01), (0.9999, 0.0001),
                                             (0.0042, 0.0001)])
def test_tick_size_is_a_cent_from_one_dollar(price: float, step: float) -> None:
    """Rule 612: $0.01 at or above $1.00, $0.0001 below."""
    assert tick_size(price) == step


@pytest.mark.parametrize(("raw", "rounded"), [(187.3449, 187.34), (187.345001, 187.35),
                                              (0.42157, 0.4216), (0.999996, 1.0),
                                              (1.004, 1.0), (0.00001, 0.0001)])
def test_round_price_examples(raw: float, rounded: float) -> None:
    """Prices round to the nearest tick and never to zero."""
    assert round_price(raw) == rounded


@given(st.floats(min_value=1e-6, max_value=1e6, allow_nan=False))
def test_round_price_is_a_positive_multiple_of_its_tick(raw: float) -> None:
    """Any positive price rounds to a positive multiple of its own tick size."""
    price = round_price(raw)
    assert price > 0
    assert is_multiple(price, tick_size(price))
    assert abs(price - raw) <= tick_size(raw) / 2 + 1e-9 or raw < 0.00005


def test_make_tick_computes_change_against_the_open() -> None:
    """change is price - open and change_pct is in percent, both rounded."""
    tick = make_tick("AAPL", 190.45, 189.50, 300, 1_700_000_000_000)
    assert tick.change == 0.95
    assert tick.change_pct == 0.5
    down = make_tick("MULN", 0.4001, 0.4215, 100, 0)
    assert down.change == -0.0214
    assert down.change_pct == -5.08


def test_as_dict_has_exactly_the_tick_fields() -> None:
    """The published message is {symbol, price, change, change_pct, volume, ts}."""
    tick = Tick("MSFT", 415.2, 0.0, 0.0, 100, 123)
    assert tick.as_dict() == {"symbol": "MSFT", "price": 415.2, "change": 0.0,
                              "change_pct": 0.0, "volume": 100, "ts": 123}

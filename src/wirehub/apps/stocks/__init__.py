"""The live stock-market feed: ticks on ``stocks:<SYMBOL>`` channels.

``stocks_app()`` publishes simulated ticks (or a CSV replay, or any
:class:`TickSource`) at a configurable rate. Serve it alone with
``wirehub serve wirehub.apps.stocks:stocks_app``.
"""

from __future__ import annotations

from .factory import NAMESPACE, StocksApp, stocks_app
from .feed import CHANNEL_PREFIX, Pacer, StockFeed
from .replay import CsvReplay
from .simulator import TRADING_SECONDS_PER_DAY, TRADING_SECONDS_PER_YEAR, Simulator
from .source import TickSource
from .tick import Tick, round_price, tick_size
from .universe import UNIVERSE, SymbolSpec

__all__ = [
    "CHANNEL_PREFIX",
    "NAMESPACE",
    "TRADING_SECONDS_PER_DAY",
    "TRADING_SECONDS_PER_YEAR",
    "UNIVERSE",
    "CsvReplay",
    "Pacer",
    "Simulator",
    "StockFeed",
    "StocksApp",
    "SymbolSpec",
    "Tick",
    "TickSource",
    "round_price",
    "stocks_app",
    "tick_size",
]


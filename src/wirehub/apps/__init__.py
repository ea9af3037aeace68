"""Apps that ship with wirehub, written with the public :class:`wirehub.App` API."""

from __future__ import annotations

from pathlib import Path

from ..app import App
from .chat import chat_app
from .echo import echo_app
from .stocks import stocks_app

__all__ = ["chat_app", "default_app", "echo_app", "stocks_app"]


def default_app(
    *,
    stocks_rate: float = 1000.0,
    stocks_seed: int | None = None,
    stocks_csv: str | Path | None = None,
    stocks_symbols: list[str] | None = None,
) -> App:
    """The app ``wirehub serve`` runs by default: echo, chat and the stock feed together."""
    stocks = stocks_app(rate=stocks_rate, seed=stocks_seed, csv_path=stocks_csv,
                        symbols=stocks_symbols)
    return App("default").include(echo_app()).include(chat_app()).include(stocks)

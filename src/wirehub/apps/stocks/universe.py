"""The simulator's ticker universe: symbols, names, prices, volatilities, activity.

Prices and annualised volatilities are plausible round figures, not quotes.
``weight`` is a symbol's share of the trading activity: a symbol of weight 10
prints ten times as often as one of weight 1 (mega caps and meme stocks trade
most). Two sub-dollar stocks exercise the $0.0001 tick size.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UNIVERSE", "SymbolSpec", "by_symbol"]


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One simulated stock; ``drift`` and ``volatility`` are annualised."""

    symbol: str
    name: str
    price: float
    volatility: float
    weight: float = 1.0
    drift: float = 0.07

    def __post_init__(self) -> None:
        from ...exceptions import ConfigError

        if self.price <= 0:
            raise ConfigError(f"{self.symbol}.price", self.price, "a price > 0")
        if self.volatility < 0:
            raise ConfigError(f"{self.symbol}.volatility", self.volatility, "a number >= 0")
        if self.weight <= 0:
            raise ConfigError(f"{self.symbol}.weight", self.weight, "a number > 0")


_S = SymbolSpec

UNIVERSE: tuple[SymbolSpec, ...] = (
    _S("AAPL", "Apple Inc.", 189.50, 0.25, 10),
    _S("MSFT", "Microsoft Corporation", 415.20, 0.24, 9),
    _S("NVDA", "NVIDIA Corporation", 121.40, 0.50, 12),
    _S("AMZN", "Amazon.com, Inc.", 182.30, 0.32, 8),
    _S("GOOGL", "Alphabet Inc. Class A", 171.60, 0.30, 7),
    _S("GOOG", "Alphabet Inc. Class C", 173.10, 0.30, 4),
    _S("META", "Meta Platforms, Inc.", 505.80, 0.38, 7),
    _S("TSLA", "Tesla, Inc.", 178.90, 0.60, 12),
    _S("BRK.B", "Berkshire Hathaway Inc. Class B", 411.70, 0.16, 2),
    _S("AVGO", "Broadcom Inc.", 1405.00, 0.40, 3),
    _S("JPM", "JPMorgan Chase & Co.", 198.40, 0.22, 4),
    _S("V", "Visa Inc.", 274.90, 0.20, 3),
    _S("MA", "Mastercard Incorporated", 458.30, 0.21, 2),
    _S("UNH", "UnitedHealth Group Incorporated", 492.10, 0.24, 2),
    _S("XOM", "Exxon Mobil Corporation", 113.80, 0.25, 4),
    _S("JNJ", "Johnson & Johnson", 147.60, 0.16, 2),
    _S("PG", "The Procter & Gamble Company", 165.40, 0.15, 2),
    _S("HD", "The Home Depot, Inc.", 342.50, 0.22, 2),
    _S("COST", "Costco Wholesale Corporation", 812.70, 0.20, 2),
    _S("LLY", "Eli Lilly and Company", 782.40, 0.30, 3),
    _S("ABBV", "AbbVie Inc.", 161.20, 0.22, 2),
    _S("MRK", "Merck & Co., Inc.", 128.90, 0.20, 2),
    _S("PEP", "PepsiCo, Inc.", 171.30, 0.16, 2),
    _S("KO", "The Coca-Cola Company", 62.40, 0.14, 3),
    _S("WMT", "Walmart Inc.", 60.80, 0.18, 4),
    _S("BAC", "Bank of America Corporation", 38.70, 0.26, 6),
    _S("CVX", "Chevron Corporation", 156.20, 0.24, 3),
    _S("ADBE", "Adobe Inc.", 478.60, 0.34, 2),
    _S("CRM", "Salesforce, Inc.", 289.40, 0.33, 3),
    _S("NFLX", "Netflix, Inc.", 621.50, 0.40, 3),
    _S("AMD", "Advanced Micro Devices, Inc.", 162.80, 0.52, 9),
    _S("INTC", "Intel Corporation", 30.60, 0.40, 7),
    _S("CSCO", "Cisco Systems, Inc.", 47.20, 0.22, 4),
    _S("ORCL", "Oracle Corporation", 123.90, 0.28, 3),
    _S("QCOM", "QUALCOMM Incorporated", 198.70, 0.35, 3),
    _S("TXN", "Texas Instruments Incorporated", 194.20, 0.26, 2),
    _S("IBM", "International Business Machines Corporation", 168.90, 0.22, 2),
    _S("DIS", "The Walt Disney Company", 102.30, 0.28, 3),
    _S("NKE", "NIKE, Inc.", 93.80, 0.30, 3),
    _S("MCD", "McDonald's Corporation", 258.60, 0.17, 2),
    _S("T", "AT&T Inc.", 17.40, 0.22, 5),
    _S("VZ", "Verizon Communications Inc.", 40.10, 0.20, 3),
    _S("PFE", "Pfizer Inc.", 28.70, 0.25, 5),
    _S("BA", "The Boeing Company", 178.40, 0.38, 3),
    _S("CAT", "Caterpillar Inc.", 338.20, 0.28, 2),
    _S("GS", "The Goldman Sachs Group, Inc.", 457.60, 0.26, 2),
    _S("MS", "Morgan Stanley", 97.80, 0.27, 2),
    _S("C", "Citigroup Inc.", 62.50, 0.30, 3),
    _S("WFC", "Wells Fargo & Company", 59.40, 0.27, 3),
    _S("UBER", "Uber Technologies, Inc.", 70.20, 0.42, 4),
    _S("ABNB", "Airbnb, Inc.", 148.30, 0.45, 2),
    _S("SHOP", "Shopify Inc.", 65.90, 0.55, 3),
    _S("PLTR", "Palantir Technologies Inc.", 21.80, 0.65, 8),
    _S("SNAP", "Snap Inc.", 15.60, 0.70, 4),
    _S("F", "Ford Motor Company", 12.10, 0.35, 5),
    _S("GME", "GameStop Corp.", 23.40, 0.95, 5),
    _S("AMC", "AMC Entertainment Holdings, Inc.", 4.85, 0.95, 5),
    _S("SIRI", "Sirius XM Holdings Inc.", 2.95, 0.40, 3),
    _S("SNDL", "SNDL Inc.", 1.92, 0.70, 2),
    _S("MULN", "Mullen Automotive Inc.", 0.4215, 1.20, 2),
    _S("FFIE", "Faraday Future Intelligent Electric Inc.", 0.1834, 1.40, 2),
)

_BY_SYMBOL = {spec.symbol: spec for spec in UNIVERSE}


def by_symbol(symbol: str) -> SymbolSpec | None:
    """The universe's spec of ``symbol``, or None."""
    return _BY_SYMBOL.get(symbol)

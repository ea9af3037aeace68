"""Replay recorded ticks from a CSV file.

The file has a header row naming the columns ``symbol,price,volume`` and,
optionally, ``ts`` (ms since the epoch); other columns are ignored. The feed
loop paces the replay, so the file's timestamps do not set its speed. At the
end of the file the replay starts over (``loop=True``) or is exhausted.
``change`` and ``change_pct`` compare each price with the first price of its
symbol in the file.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from ...exceptions import ConfigError
from .tick import Tick, make_tick, round_price

__all__ = ["CsvReplay", "Row"]

_REQUIRED = ("symbol", "price", "volume")


class Row(NamedTuple):
    """One parsed line of the file."""

    symbol: str
    price: float
    volume: int
    ts: int | None


class CsvReplay:
    """Ticks read from ``path``, replayed in file order.

    ``symbols`` keeps only those symbols' rows. ``file_ts=True`` stamps ticks
    with the file's ``ts`` column (where present) instead of the current time.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        loop: bool = True,
        symbols: Iterable[str] | None = None,
        file_ts: bool = False,
    ) -> None:
        self.path = Path(path)
        self.loop = loop
        self.file_ts = file_ts
        rows = _read(self.path)
        if symbols is not None:
            keep = set(symbols)
            rows = [row for row in rows if row.symbol in keep]
        if not rows:
            raise ConfigError("csv_path", str(self.path), "a CSV file with at least one tick")
        self.rows: list[Row] = rows
        self._opens: dict[str, float] = {}
        for row in rows:
            self._opens.setdefault(row.symbol, row.price)
        self._pos = 0
        self.laps = 0
        self._exhausted = False

    def __repr__(self) -> str:
        return f"<CsvReplay {self.path} rows={len(self.rows)} loop={self.loop}>"

    @property
    def exhausted(self) -> bool:
        """True once the last row was replayed and ``loop`` is off."""
        return self._exhausted

    def opens(self) -> Mapping[str, float]:
        """Symbol -> its first price in the file, in order of first appearance."""
        return self._opens

    def next_batch(self, count: int, now_ms: int) -> list[Tick]:
        """The next ``count`` rows as ticks; fewer at the end of a non-looping file."""
        rows, opens, n = self.rows, self._opens, len(self.rows)
        out: list[Tick] = []
        while len(out) < count and not self._exhausted:
            take = min(count - len(out), n - self._pos)
            for row in rows[self._pos:self._pos + take]:
                ts = row.ts if self.file_ts and row.ts is not None else now_ms
                out.append(make_tick(row.symbol, row.price, opens[row.symbol], row.volume, ts))
            self._pos += take
            if self._pos == n:
                self.laps += 1
                self._pos = 0
                self._exhausted = not self.loop
        return out


def _read(path: Path) -> list[Row]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = [name.strip() for name in reader.fieldnames or ()]
            missing = [col for col in _REQUIRED if col not in header]
            if missing:
                raise ConfigError("csv_path", str(path),
                                  f"a header row with columns symbol,price,volume[,ts] "
                                  f"(missing {','.join(missing)})")
            reader.fieldnames = header
            return [_parse(record, path, reader.line_num) for record in reader]
    except OSError as exc:
        raise ConfigError("csv_path", str(path), f"a readable CSV file ({exc.strerror})") from exc


def _parse(record: dict[str, str | None], path: Path, line: int) -> Row:
    try:
        symbol = (record["symbol"] or "").strip()
        price = float(record["price"] or "")
        volume = int(record["volume"] or "")
        raw_ts = (record.get("ts") or "").strip()
        ts = int(raw_ts) if raw_ts else None
    except ValueError as exc:
        raise ConfigError("csv_path", f"{path}:{line}", f"valid numbers ({exc})") from None
    if not symbol or not (math.isfinite(price) and price > 0) or volume < 0:
        raise ConfigError("csv_path", f"{path}:{line}",
                          "a symbol, a price > 0 and a volume >= 0 on every line")
    return Row(symbol, round_price(price), volume, ts)

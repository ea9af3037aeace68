"""CSV replay: parsing the sample file, change against the first price, looping, bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from wirehub.apps.stocks import CsvReplay, TickSource
from wirehub.exceptions import ConfigError

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ticks_sample.csv"


def sample_rows() -> list[dict[str, str]]:
    with SAMPLE.open(newline="") as f:
        return list(csv.DictReader(f))


def test_sample_file_parses() -> None:
    """The shipped sample has a header and every row becomes a tick source row."""
    replay = CsvReplay(SAMPLE)
    rows = sample_rows()
    assert isinstance(replay, TickSource)
    assert len(replay.rows) == len(rows) >= 20
    assert [r.symbol for r in replay.rows] == [r["symbol"] for r in rows]
    assert {"AAPL", "MSFT"} <= set(replay.opens())


def test_opens_are_first_prices_per_symbol() -> None:
    """Each symbol opens at its first price in the file, in order of first appearance."""
    firsts: dict[str, float] = {}
    for row in sample_rows():
        firsts.setdefault(row["symbol"], float(row["price"]))
    assert dict(CsvReplay(SAMPLE).opens()) == firsts


def test_change_and_change_pct_against_first_price() -> None:
    """Ticks carry file prices and volumes with change relative to the symbol's first price."""
    replay = CsvReplay(SAMPLE)
    opens = replay.opens()
    ticks = replay.next_batch(len(replay.rows), 42)
    for tick, row in zip(ticks, sample_rows(), strict=True):
        assert (tick.symbol, tick.price, tick.volume) == (
            row["symbol"], float(row["price"]), int(row["volume"]))
        assert tick.change == pytest.approx(tick.price - opens[tick.symbol], abs=1e-9)
        assert tick.change_pct == pytest.approx(
            (tick.price / opens[tick.symbol] - 1) * 100, abs=0.005)
        assert tick.ts == 42
    first = ticks[0]
    assert first.change == 0.0 and first.change_pct == 0.0


def test_replay_loops() -> None:
    """With loop=True the replay starts over at the end of the file, forever."""
    replay = CsvReplay(SAMPLE, loop=True)
    n = len(replay.rows)
    ticks = replay.next_batch(2 * n + 5, 0)
    assert len(ticks) == 2 * n + 5
    assert [t.price for t in ticks[n:2 * n]] == [t.price for t in ticks[:n]]
    assert ticks[2 * n].price == ticks[0].price
    assert replay.laps == 2 and not replay.exhausted


def test_replay_stops_at_end_without_loop() -> None:
    """With loop=False the last batch is short and the source is then exhausted."""
    replay = CsvReplay(SAMPLE, loop=False)
    n = len(replay.rows)
    assert len(replay.next_batch(n - 3, 0)) == n - 3
    assert not replay.exhausted
    assert len(replay.next_batch(10, 0)) == 3
    assert replay.exhausted
    assert replay.next_batch(10, 0) == []


def test_file_timestamps_on_request(tmp_path: Path) -> None:
    """file_ts=True stamps ticks with the ts column; rows without one get the clock."""
    path = tmp_path / "t.csv"
    path.write_text("symbol,price,volume,ts\nAAPL,190.001,100,1000\nAAPL,190.5,200,\n")
    ticks = CsvReplay(path, file_ts=True).next_batch(2, 777)
    assert [t.ts for t in ticks] == [1000, 777]
    assert ticks[0].price == 190.0  # rounded to the tick size


def test_ts_column_is_optional_and_extra_columns_ignored(tmp_path: Path) -> None:
    """A file with only symbol,price,volume (in any order, plus others) replays."""
    path = tmp_path / "t.csv"
    path.write_text("volume,venue,symbol,price\n100,XNAS,MULN,0.42151\n")
    (tick,) = CsvReplay(path).next_batch(1, 5)
    assert (tick.symbol, tick.price, tick.volume, tick.ts) == ("MULN", 0.4215, 100, 5)


def test_symbols_filter_rows() -> None:
    """symbols= keeps only the rows of those symbols."""
    replay = CsvReplay(SAMPLE, symbols=["MSFT"])
    assert list(replay.opens()) == ["MSFT"]
    assert {t.symbol for t in replay.next_batch(50, 0)} == {"MSFT"}


@pytest.mark.parametrize("text", [
    "symbol,price\nAAPL,1\n",  # no volume column
    "symbol,price,volume\n",  # no rows
    "symbol,price,volume\nAAPL,abc,100\n",  # not a number
    "symbol,price,volume\nAAPL,-1,100\n",  # not a price
    "symbol,price,volume\nAAPL,nan,100\n",
    "symbol,price,volume\n,1.5,100\n",  # no symbol
])
def test_bad_files_raise_config_error(tmp_path: Path, text: str) -> None:
    """A malformed file raises ConfigError naming csv_path."""
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        CsvReplay(path)
    assert info.value.key == "csv_path"


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    """A path that cannot be read raises ConfigError, not OSError."""
    with pytest.raises(ConfigError, match="readable"):
        CsvReplay(tmp_path / "nope.csv")

"""The feed loop: pacing arithmetic, publishing batches, counters, start and stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from wirehub.apps.stocks import CsvReplay, Pacer, Simulator, StockFeed, Tick, stocks_app
from wirehub.brokers import MemoryBroker
from wirehub.exceptions import ConfigError, RequestError

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ticks_sample.csv"


class Recorder:
    """Stands in for the served App: records publishes, signals after ``want``."""

    def __init__(self, want: int = 0, fail_at: int | None = None) -> None:
        self.published: list[tuple[str, Any]] = []
        self.want = want
        self.fail_at = fail_at
        self.enough = asyncio.Event()
        # the served app's node: its broker grants the feed lease (one process)
        self.node = SimpleNamespace(name="test-node", broker=MemoryBroker())

    async def publish(self, channel: str, data: Any) -> None:
        if self.fail_at is not None and len(self.published) == self.fail_at:
            raise RequestError("internal", "broker down")
        self.published.append((channel, data))
        if len(self.published) >= self.want:
            self.enough.set()


@pytest.mark.parametrize(("rate", "interval", "per_batch"), [
    (1000.0, 0.02, 20), (100_000.0, 0.02, 2000), (1000.0, 0.05, 50), (250.0, 0.04, 10)])
def test_ticks_per_batch_is_rate_times_interval(rate: float, interval: float,
                                                per_batch: int) -> None:
    """At regular wake-ups every batch holds rate * interval ticks."""
    pacer = Pacer(rate, start=0.0)
    assert [pacer.due(k * interval) for k in range(1, 51)] == [per_batch] * 50
    assert StockFeed(Simulator(), rate=rate, interval=interval).batch_size == pytest.approx(
        per_batch)


def test_fractional_batches_carry_over() -> None:
    """At 10 ticks/s and 20 ms wake-ups, one batch in five has a tick: 10 per second."""
    pacer = Pacer(10.0, start=0.0)
    counts = [pacer.due(k * 0.02) for k in range(1, 101)]
    assert set(counts) == {0, 1}
    assert sum(counts) == 20


def test_late_wakeups_keep_the_average_rate() -> None:
    """Irregular wake-ups still give rate * elapsed ticks in total."""
    pacer = Pacer(1000.0, start=0.0)
    times = [0.013, 0.05, 0.051, 0.09, 0.2, 0.21, 0.333]
    assert sum(pacer.due(t) for t in times) == 333


def test_a_stall_is_capped_at_max_lag() -> None:
    """After a 10 s stall only max_lag seconds of ticks are released."""
    pacer = Pacer(1000.0, start=0.0, max_lag=0.25)
    assert pacer.due(10.0) == 250
    assert pacer.due(10.02) == 20


def test_bad_rate_is_refused() -> None:
    """A rate <= 0 raises ConfigError naming rate."""
    with pytest.raises(ConfigError, match="rate"):
        Pacer(0, start=0.0)
    with pytest.raises(ConfigError, match="rate"):
        StockFeed(Simulator(), rate=-5)


async def test_publish_batch_publishes_each_tick_on_its_channel() -> None:
    """Every tick goes to stocks:<SYMBOL> as the tick dict; counters and latest follow."""
    feed = StockFeed(Simulator(seed=1))
    batch = feed.source.next_batch(1500, 99)
    recorder = Recorder()
    await feed.publish_batch(batch, recorder.publish)
    assert recorder.published == [(f"stocks:{t.symbol}", t.as_dict()) for t in batch]
    assert feed.published == 1500 and feed.batches == 1 and feed.failed == 0
    last: dict[str, Tick] = {}
    for tick in batch:
        last[tick.symbol] = tick
    assert feed.latest == last


async def test_a_broker_failure_drops_the_rest_of_the_batch(caplog: Any) -> None:
    """A publish that fails is logged; that tick and the rest of its batch are counted failed."""
    feed = StockFeed(Simulator(seed=1))
    recorder = Recorder(fail_at=2)
    with caplog.at_level(logging.WARNING, "wirehub.apps.stocks"):
        await feed.publish_batch(feed.source.next_batch(10, 0), recorder.publish)
    assert feed.published == 2 and feed.failed == 8
    assert "dropped 8 ticks" in caplog.text


async def test_run_stops_when_the_source_is_exhausted() -> None:
    """A non-looping replay is published row by row, then the loop returns."""
    replay = CsvReplay(SAMPLE, loop=False)
    feed = StockFeed(replay, rate=100_000.0)
    recorder = Recorder()
    await asyncio.wait_for(feed.run(recorder.publish), 30)
    assert [data["price"] for _, data in recorder.published] == [r.price for r in replay.rows]
    assert feed.stats()["published"] == len(replay.rows)
    assert not feed.running


async def test_a_bug_in_the_source_is_logged_not_raised(caplog: Any) -> None:
    """If the source raises, the feed logs the traceback and stops quietly."""

    class Broken:
        exhausted = False

        def opens(self) -> Mapping[str, float]:
            return {"X": 1.0}

        def next_batch(self, count: int, now_ms: int) -> list[Tick]:
            raise ZeroDivisionError("oops")

    feed = StockFeed(Broken(), rate=1000.0)
    with caplog.at_level(logging.ERROR, "wirehub.apps.stocks"):
        await asyncio.wait_for(feed.run(Recorder().publish), 30)
    assert "stopped by a bug" in caplog.text
    assert "ZeroDivisionError" in caplog.text


async def test_a_cancel_swallowed_inside_a_publish_still_stops_the_feed(unit: float) -> None:
    """On Python 3.11 ``asyncio.wait_for`` (in redis-py) can drop a cancel that races with a
    finishing command; the feed sees the task's pending cancel and stops anyway (it used to
    publish on, and ``asyncio.run`` waited for it forever at shutdown)."""
    feed = StockFeed(Simulator(seed=1), rate=5000.0)
    in_publish = asyncio.Event()
    swallowed = False

    async def publish(channel: str, data: Any) -> None:
        nonlocal swallowed
        if swallowed:
            await asyncio.sleep(0)
            return
        in_publish.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:  # what wait_for does when the command just finished
            swallowed = True

    task = asyncio.create_task(feed.run(publish))
    await asyncio.wait_for(in_publish.wait(), unit)
    task.cancel()  # once, as asyncio.run does with the tasks left at the end
    done, _ = await asyncio.wait({task}, timeout=unit)
    assert swallowed
    assert task in done and task.cancelled()
    assert not feed.running


def test_watchlist_before_and_after_ticks() -> None:
    """The watchlist shows opening prices until a symbol trades, then its latest tick."""
    feed = StockFeed(Simulator(seed=1, symbols=["AAPL", "MULN"]))
    before = feed.watchlist(lambda s: s.lower())
    assert before[0] == {"symbol": "AAPL", "name": "aapl", "price": 189.5, "open": 189.5,
                         "change": 0.0, "change_pct": 0.0, "ts": None}
    feed.latest["AAPL"] = Tick("AAPL", 190.5, 1.0, 0.53, 100, 7)
    after = feed.watchlist(lambda s: None)
    assert after[0]["price"] == 190.5 and after[0]["change_pct"] == 0.53 and after[0]["ts"] == 7
    assert after[1]["price"] == 0.4215


async def test_startup_starts_and_shutdown_stops_the_feed(unit: float) -> None:
    """The app's startup hook starts publishing; the shutdown hook cancels and awaits it."""
    app = stocks_app(rate=5000.0, seed=3)
    served = Recorder(want=50)
    await app.run_hooks(app.startup_hooks, served)
    task = app.task
    assert task is not None
    await asyncio.wait_for(served.enough.wait(), unit)
    assert app.stats()["running"] is True
    await app.run_hooks(app.shutdown_hooks, served)
    assert task.done() and app.task is None
    assert app.stats()["running"] is False
    assert app.stats()["published"] == len(served.published) >= 50
    assert all(channel.startswith("stocks:") for channel, _ in served.published)

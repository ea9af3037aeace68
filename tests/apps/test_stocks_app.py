"""The stocks app over a real socket: live ticks per symbol, server-only publishing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

import wirehub.apps.stocks as stocks_pkg
from wirehub.app import App
from wirehub.apps.stocks import CsvReplay, Simulator, StocksApp, stocks_app
from wirehub.config import ServerConfig
from wirehub.core.namespaces import SlowConsumerPolicy
from wirehub.exceptions import ConfigError, RequestError
from wirehub.transport.runner import ServerRunner

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ticks_sample.csv"
TICK_FIELDS = {"symbol", "price", "change", "change_pct", "volume", "ts"}


@pytest.fixture
async def stocks() -> AsyncIterator[tuple[ServerRunner, StocksApp]]:
    """stocks_app(rate=2000, seed=1) served alone on port 0."""
    app = stocks_app(rate=2000.0, seed=1)
    async with ServerRunner(app, ServerConfig(port=0)) as runner:
        yield runner, app


async def recv(ws: ClientConnection, unit: float) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), unit))


async def request(ws: ClientConnection, unit: float, frame: dict[str, Any]) -> dict[str, Any]:
    """Send ``frame`` and return the reply or error with its id, skipping pushes."""
    await ws.send(json.dumps(frame))
    while True:
        msg = await recv(ws, unit)
        if msg["op"] in ("reply", "error") and msg.get("id") == frame["id"]:
            return msg


async def test_subscribers_get_live_ticks_of_their_symbols_only(
        stocks: tuple[ServerRunner, StocksApp], unit: float) -> None:
    """A client subscribed to AAPL and NVDA receives ticks of those two, with every field."""
    runner, app = stocks
    async with connect(runner.ws_url + "/ws") as ws:
        assert (await recv(ws, unit))["op"] == "welcome"
        for n, symbol in enumerate(["AAPL", "NVDA"], 1):
            reply = await request(ws, unit, {"op": "subscribe", "id": n,
                                             "channel": f"stocks:{symbol}"})
            assert reply["op"] == "reply", reply
        seen: dict[str, int] = {}
        while len(seen) < 2 or min(seen.values()) < 5:
            msg = await recv(ws, unit)
            assert msg["op"] == "message", msg
            assert msg["channel"] in ("stocks:AAPL", "stocks:NVDA")
            tick = msg["data"]
            assert set(tick) == TICK_FIELDS
            assert msg["channel"] == f"stocks:{tick['symbol']}"
            assert tick["price"] > 0 and tick["volume"] >= 100 and tick["ts"] > 0
            assert isinstance(tick["change"], float) and isinstance(tick["change_pct"], float)
            seen[tick["symbol"]] = seen.get(tick["symbol"], 0) + 1
    assert app.stats()["published"] >= 10


async def test_client_publish_is_forbidden(stocks: tuple[ServerRunner, StocksApp],
                                           unit: float) -> None:
    """Publishing to a stocks channel is answered with an error frame, code forbidden."""
    runner, _ = stocks
    async with connect(runner.ws_url + "/ws") as ws:
        await recv(ws, unit)
        answer = await request(ws, unit, {"op": "publish", "id": 7, "channel": "stocks:AAPL",
                                          "data": {"price": 0.01}})
        assert answer["op"] == "error", answer
        assert answer["code"] == "forbidden"


async def test_symbols_request_lists_the_watchlist(stocks: tuple[ServerRunner, StocksApp],
                                                   unit: float) -> None:
    """send stocks.symbols returns every symbol with a name and its latest price."""
    runner, _ = stocks
    async with connect(runner.ws_url + "/ws") as ws:
        await recv(ws, unit)
        reply = await request(ws, unit, {"op": "send", "id": 1, "type": "stocks.symbols"})
    rows = reply["result"]
    assert len(rows) >= 50
    aapl = next(row for row in rows if row["symbol"] == "AAPL")
    assert aapl["name"] == "Apple Inc."
    assert aapl["price"] > 0 and aapl["open"] == 189.5


async def test_feed_runs_when_included_in_another_app(unit: float) -> None:
    """Included into a combined app (as default_app does), the feed publishes through it."""
    stocks = stocks_app(rate=200.0, seed=5, symbols=["AAPL"])
    combined = App("combined").include(stocks)
    async with ServerRunner(combined, ServerConfig(port=0)) as runner, \
            connect(runner.ws_url + "/ws") as ws:
        await recv(ws, unit)
        await request(ws, unit, {"op": "subscribe", "id": 1, "channel": "stocks:AAPL"})
        msg = await recv(ws, unit)
        assert msg["op"] == "message" and msg["data"]["symbol"] == "AAPL"
    assert stocks.task is None and stocks.stats()["published"] >= 1


async def test_shutdown_stops_the_feed() -> None:
    """Stopping the server cancels and awaits the feed task."""
    app = stocks_app(rate=1000.0, seed=2)
    async with ServerRunner(app, ServerConfig(port=0)):
        task = app.task
        assert task is not None and not task.done()
    assert task.done() and app.task is None


async def test_a_stopping_leader_releases_the_feed_lease(redis_server: Any, unit: float) -> None:
    """Drained or stopped, the leading node gives the lease up: no wait for it to lapse."""
    import redis.asyncio as aioredis

    app = stocks_app(rate=200.0, seed=3, symbols=["AAPL"])
    config = ServerConfig(port=0, broker=redis_server.url, node_name="leader")
    r = aioredis.from_url(redis_server.url)
    try:
        async with ServerRunner(app, config):
            async with asyncio.timeout(unit):
                while await r.get("wh:lease:stocks-feed") != b"leader":
                    await asyncio.sleep(0.02)
            assert app.task is not None
        assert await r.exists("wh:lease:stocks-feed") == 0  # the lease lives 3 s otherwise
    finally:
        await r.aclose()


async def test_a_new_leader_resumes_from_the_latest_ticks(redis_server: Any, unit: float) -> None:
    """The node taking the feed over carries prices on from the broker, not from the opens."""
    from wirehub.brokers.redis import RedisBroker

    before = RedisBroker(redis_server.url)  # the ticks a node before this one published
    await before.start()
    try:
        await before.publish("stocks:AAPL", {"symbol": "AAPL", "price": 400.0, "change": 210.5,
                                             "change_pct": 111.08, "volume": 100, "ts": 1},
                             history_size=1)
    finally:
        await before.close()
    app = stocks_app(rate=200.0, seed=3, symbols=["AAPL"])
    config = ServerConfig(port=0, broker=redis_server.url, node_name="next")
    async with ServerRunner(app, config) as runner, connect(runner.ws_url + "/ws") as ws:
        await recv(ws, unit)
        await request(ws, unit, {"op": "subscribe", "id": 1, "channel": "stocks:AAPL"})
        while True:  # the snapshot (the old tick) first, then the new leader's ticks
            msg = await recv(ws, unit)
            if msg["op"] == "message" and msg["data"]["ts"] != 1:
                break
    assert msg["data"]["price"] == pytest.approx(400.0, rel=0.01)  # the open is 189.50


def test_namespace_is_declared_for_snapshots_and_conflation() -> None:
    """stocks:* keeps one message, snapshots it to new subscribers, conflates slow ones."""
    opts = stocks_app().namespaces.for_channel("stocks:AAPL")
    assert opts.history_size == 1
    assert opts.snapshot is True
    assert opts.slow_consumer is SlowConsumerPolicy.CONFLATE


async def test_publish_hook_refuses_with_forbidden() -> None:
    """The stocks publish hook raises RequestError('forbidden') for any client data."""
    hook = stocks_app().publish_hooks["stocks"]
    with pytest.raises(RequestError) as info:
        await hook(None, "stocks:AAPL", {"price": 1})
    assert info.value.code == "forbidden"
    assert info.value.message == "stocks channels are published by the server only"


def test_factory_picks_the_source() -> None:
    """csv_path selects a looping replay, otherwise the seeded simulator; symbols narrow it."""
    replay = stocks_app(csv_path=SAMPLE, symbols=["MSFT"]).feed.source
    assert isinstance(replay, CsvReplay) and replay.loop and list(replay.opens()) == ["MSFT"]
    sim = stocks_app(rate=500.0, seed=4, symbols=["AAPL"]).feed.source
    assert isinstance(sim, Simulator) and sim.seed == 4 and sim.rate == 500.0
    custom = Simulator(seed=0)
    assert stocks_app(custom).feed.source is custom
    assert stocks_app().name == "stocks"


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"source": Simulator(), "seed": 1},
                                    {"source": Simulator(), "csv_path": SAMPLE}])
def test_factory_refuses_bad_arguments(kwargs: dict[str, Any]) -> None:
    """A rate <= 0, or a source together with seed/csv_path, raises ConfigError."""
    with pytest.raises(ConfigError):
        stocks_app(**kwargs)


def test_package_exports_exactly_its_all() -> None:
    """Every name in wirehub.apps.stocks.__all__ exists; helpers stay private."""
    for name in stocks_pkg.__all__:
        assert hasattr(stocks_pkg, name), name
    assert len(set(stocks_pkg.__all__)) == len(stocks_pkg.__all__)
    assert {"stocks_app", "Tick", "TickSource", "Simulator", "CsvReplay"} <= set(
        stocks_pkg.__all__)

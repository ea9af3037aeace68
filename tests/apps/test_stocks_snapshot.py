"""Stock channels: a new subscriber gets the latest tick at once, then live ones."""

from __future__ import annotations

import asyncio

from tests.rawclient import RawClient
from wirehub.apps import default_app
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


async def test_snapshot_then_live_ticks(unit):
    """Subscribing to stocks:AAPL yields the newest tick right after the reply, then newer."""
    app = default_app(stocks_rate=200, stocks_seed=7, stocks_symbols=["AAPL", "MSFT"])
    async with ServerRunner(app, ServerConfig(port=0)) as runner:
        watcher = await RawClient.connect(runner.ws_url + "/ws", unit)
        await watcher.ok("subscribe", channel="stocks:MSFT")
        await watcher.messages(3)  # the feed is running
        c = await RawClient.connect(runner.ws_url + "/ws", unit)
        reply = await c.ok("subscribe", channel="stocks:AAPL")
        assert reply["offset"] > 0
        [snap] = await c.messages(1)
        assert snap["offset"] == reply["offset"]  # the latest tick, at once
        assert set(snap["data"]) == {"symbol", "price", "change", "change_pct", "volume", "ts"}
        live = await c.messages(2)
        assert [m["offset"] for m in live] == [reply["offset"] + 1, reply["offset"] + 2]
        assert all(m["channel"] == "stocks:AAPL" for m in [snap, *live])
        await asyncio.gather(c.close(), watcher.close())

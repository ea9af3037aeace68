"""Every node answers stocks.symbols with live prices, not only the feed's leader."""

from __future__ import annotations

from tests.rawclient import RawClient
from wirehub.apps import default_app
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


async def test_watchlist_prices_on_every_node(redis_server, unit):
    """The node without the feed lease reads the latest ticks from the broker."""
    def config(name: str) -> ServerConfig:
        return ServerConfig(port=0, broker=redis_server.url, node_name=name)

    app_a = default_app(stocks_rate=200, stocks_seed=1, stocks_symbols=["AAPL", "MSFT"])
    app_b = default_app(stocks_rate=200, stocks_seed=1, stocks_symbols=["AAPL", "MSFT"])
    async with ServerRunner(app_a, config("a")) as a, \
            ServerRunner(app_b, config("b")) as b:
        watcher = await RawClient.connect(a.ws_url + "/ws", unit)
        for symbol in ("AAPL", "MSFT"):
            await watcher.ok("subscribe", channel=f"stocks:{symbol}")
        seen: set[str] = set()
        while seen != {"stocks:AAPL", "stocks:MSFT"}:  # both symbols have ticked
            seen |= {m["channel"] for m in await watcher.messages(1)}
        for runner in (a, b):
            c = await RawClient.connect(runner.ws_url + "/ws", unit)
            rows = await c.ok("send", type="stocks.symbols")
            assert {r["symbol"] for r in rows} == {"AAPL", "MSFT"}
            assert all(r["ts"] is not None for r in rows), (runner.node.name, rows)
            await c.close()
        await watcher.close()

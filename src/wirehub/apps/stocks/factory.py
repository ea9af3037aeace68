"""The stocks app: a live market feed on ``stocks:<SYMBOL>`` channels.

The server publishes every tick; clients subscribe to the symbols they watch
and may not publish. ``send {type: "stocks.symbols"}`` lists every symbol with
its latest price, for building a watchlist. Serve it alone with::

    wirehub serve wirehub.apps.stocks:stocks_app
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...app import App
from ...core.codes import ErrorCode
from ...exceptions import ConfigError, RequestError, WirehubError
from ...tasks import cancel_and_wait, raise_if_cancelling
from .feed import CHANNEL_PREFIX, StockFeed
from .replay import CsvReplay
from .simulator import Simulator
from .source import TickSource
from .universe import by_symbol

if TYPE_CHECKING:
    from ...brokers import Broker

log = logging.getLogger("wirehub.stocks")

__all__ = ["NAMESPACE", "StocksApp", "stocks_app"]

NAMESPACE = "stocks"


class StocksApp(App):
    """An :class:`~wirehub.App` that owns a :class:`StockFeed` and its task."""

    def __init__(self, feed: StockFeed) -> None:
        super().__init__("stocks")
        self.feed = feed
        self.task: asyncio.Task[None] | None = None
        self._feed_task: asyncio.Task[None] | None = None  #: the feed, while this node leads
        #: the broker and node name holding the feed lease, while this node leads
        self._lease: tuple[Broker, str] | None = None

    def stats(self) -> dict[str, Any]:
        """The feed's counters: ``published``, ``batches``, ``failed``, ``rate`` ..."""
        return self.feed.stats()

    async def start_feed(self, served: App) -> None:
        """Start publishing through ``served`` (the app the node runs)."""
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._lead(served), name="wirehub.stocks.feed")

    async def _lead(self, served: App, ttl: float = 3.0) -> None:
        """Run the feed only while this node holds the broker's ``stocks-feed`` lease.

        With many nodes on one broker exactly one of them publishes ticks; if
        it dies, another takes over within ``ttl`` seconds; if it stops (drain),
        it releases the lease and another takes over at its next check.
        """
        node = served.node
        try:
            while True:
                raise_if_cancelling()
                try:
                    leading = await node.broker.lease("stocks-feed", node.name, ttl)
                except WirehubError as exc:
                    log.warning("stocks feed: lease check failed: %s", exc)
                    leading = False
                if leading and self._feed_task is None:
                    self._lease = (node.broker, node.name)
                    await self._resume(node.broker)
                    self._feed_task = asyncio.create_task(self.feed.run(served.publish))
                elif not leading and self._feed_task is not None:
                    self._lease = None
                    await self._stop_feed_task()
                await asyncio.sleep(ttl / 3)  # renew well before the lease runs out
        finally:
            await self._stop_feed_task()

    async def _stop_feed_task(self) -> None:
        """Stop the feed; it stays recorded until stopped, so an interrupted stop is redone."""
        feed = self._feed_task
        if feed is not None:
            await cancel_and_wait(feed, what="stocks feed")
            self._feed_task = None

    async def _resume(self, broker: Broker) -> None:
        """Before leading: carry the market on from the broker's latest ticks, if any."""
        resume = getattr(self.feed.source, "resume", None)
        if resume is None:
            return
        try:
            latest = await latest_ticks(broker, self.feed.source.opens())
        except WirehubError as exc:
            log.warning("stocks feed: latest ticks unavailable, starting from the opens: %s", exc)
            return
        taken = resume({sym: tick["price"] for sym, tick in latest.items() if "price" in tick})
        if taken:
            log.info("stocks feed: resumed %d symbols from the latest ticks", taken)

    async def stop_feed(self, served: App | None = None) -> None:
        """Cancel the feed task and wait until it has stopped."""
        task, self.task = self.task, None
        if task is not None:
            await cancel_and_wait(task, what="stocks feed")
        await self._stop_feed_task()  # if _lead was cancelled again in its finally
        lease, self._lease = self._lease, None
        if lease is not None:  # hand the feed to another node now, not when the lease lapses
            broker, holder = lease
            try:
                await asyncio.wait_for(broker.release("stocks-feed", holder), 2.0)
            except (WirehubError, TimeoutError) as exc:
                log.warning("stocks feed: lease not released (it lapses by itself): %s", exc)


async def latest_ticks(broker: Broker, symbols: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Symbol -> its latest tick in the broker's history (``stocks:*`` keeps one)."""
    symbols = list(symbols)
    hists = await asyncio.gather(*(broker.history(CHANNEL_PREFIX + sym, limit=1)
                                   for sym in symbols))
    return {sym: hist.publications[-1].data for sym, hist in zip(symbols, hists, strict=True)
            if hist.publications and isinstance(hist.publications[-1].data, dict)}


def stocks_app(
    source: TickSource | None = None,
    *,
    rate: float = 1000.0,
    seed: int | None = None,
    csv_path: str | Path | None = None,
    symbols: Iterable[str] | None = None,
) -> StocksApp:
    """The stock feed app, publishing ``rate`` ticks per second in all.

    The ticks come from ``source`` if given, else from a replay of ``csv_path``
    (looping), else from the built-in simulator (seeded with ``seed``).
    ``symbols`` narrows the simulator's universe or the replayed file.
    """
    if rate <= 0:
        raise ConfigError("rate", rate, "ticks per second > 0")
    if source is not None and (csv_path is not None or seed is not None or symbols is not None):
        raise ConfigError("source", source, "either a source or seed/csv_path/symbols, not both")
    if source is None:
        if csv_path is not None:
            source = CsvReplay(csv_path, loop=True, symbols=symbols)
        else:
            source = Simulator(rate=rate, seed=seed, symbols=symbols)
    app = StocksApp(StockFeed(source, rate=rate))
    app.namespace(NAMESPACE, history_size=1, snapshot=True, slow_consumer="conflate",
                  publish="server")

    @app.on_publish(NAMESPACE)
    async def refuse_client_publish(conn: Any, channel: str, data: Any) -> Any:
        raise RequestError(ErrorCode.FORBIDDEN, "stocks channels are published by the server only")

    @app.on("stocks.symbols")
    async def list_symbols(conn: Any, data: Any) -> list[dict[str, Any]]:
        rows = app.feed.watchlist(_name_of)
        if app.feed.running:
            return rows
        # another node leads the feed: the latest ticks are in the broker's history
        latest = await latest_ticks(app.node.broker, [row["symbol"] for row in rows])
        for row in rows:
            tick = latest.get(row["symbol"])
            if tick is not None:
                row.update({k: tick[k] for k in ("price", "change", "change_pct", "ts")
                            if k in tick})
        return rows

    app.on_startup(app.start_feed)
    app.on_shutdown(app.stop_feed)
    return app


def _name_of(symbol: str) -> str | None:
    spec = by_symbol(symbol)
    return spec.name if spec else None

"""One connection carries chat and stock messages together, and typed sends reach handlers."""

from __future__ import annotations

import asyncio

import wirehub
from wirehub.apps import default_app
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


async def test_chat_stocks_and_sends_on_one_connection(unit):
    """A single client gets chat messages, AAPL ticks and typed replies interleaved."""
    app = default_app(stocks_rate=200, stocks_seed=3, stocks_symbols=["AAPL", "MSFT"])
    async with ServerRunner(app, ServerConfig(port=0)) as runner:
        async with wirehub.connect(runner.ws_url + "/ws") as client:
            assert await client.send("chat.nick", {"nick": "ada"}) == {"nick": "ada"}
            chat = await client.subscribe("chat:mixed")
            ticks = await client.subscribe("stocks:AAPL")
            await client.publish("chat:mixed", {"text": "hello"})
            assert await client.send("echo", [1, 2, 3]) == [1, 2, 3]
            msg = await asyncio.wait_for(chat.get(), unit)
            assert msg.data == {"text": "hello", "nick": "ada", "user": None}
            for _ in range(3):
                tick = await asyncio.wait_for(ticks.get(), unit)
                assert tick.channel == "stocks:AAPL" and tick.data["symbol"] == "AAPL"
            symbols = await client.send("stocks.symbols")
            assert {s["symbol"] for s in symbols} == {"AAPL", "MSFT"}
            await client.publish("chat:mixed", {"text": "still here"})
            assert (await asyncio.wait_for(chat.get(), unit)).data["text"] == "still here"

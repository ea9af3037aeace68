"""Slowloris: hundreds of half-open handshakes neither lock out new clients nor live past
the handshake timeout."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.rawclient import RawClient

from .conftest import Serve, connect

HALF_OPEN = 300
PARTIAL = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nX-Slow: "


async def half_open(port: int, n: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``n`` connections that each sent part of an upgrade request and never finish it."""
    socks = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(PARTIAL)
        socks.append((reader, writer))
    return socks


async def use_the_hub(c: RawClient) -> None:
    """Subscribe, publish, receive: the connection is fully usable."""
    await c.ok("subscribe", channel="slow")
    await c.ok("publish", channel="slow", data="through")
    assert (await c.messages(1))[0]["data"] == "through"


async def test_half_open_handshakes_do_not_lock_out_clients(serve: Serve, unit: float) -> None:
    """With 300 unfinished upgrade requests held open, a new client connects and works."""
    runner = await serve()  # default handshake_timeout (10 s) outlives this test
    socks = await half_open(runner.port, HALF_OPEN)
    try:
        c = await connect(runner, unit)
        await use_the_hub(c)
        await c.close()
        assert not any(reader.at_eof() for reader, _ in socks)  # all still held open
    finally:
        for _, writer in socks:
            writer.transport.abort()


async def test_handshake_timeout_closes_half_open_sockets(server_process: Any,
                                                          unit: float) -> None:
    """`--handshake-timeout 1`: 300 half-open sockets, and ones trickling a byte at a time,
    are closed by the server; clients keep connecting meanwhile."""
    server = server_process("--handshake-timeout", "1", "--stocks-rate", "5")
    socks = await half_open(server.port, HALF_OPEN)
    trickling = await half_open(server.port, 10)
    stop = asyncio.Event()

    async def trickle(writer: asyncio.StreamWriter) -> None:
        """Send one more header byte every 0.1 s: data does not reset the timer."""
        with contextlib.suppress(ConnectionError):
            while not stop.is_set():
                writer.write(b"a")
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.1)

    tricklers = [asyncio.ensure_future(trickle(w)) for _, w in trickling]
    try:
        c = await RawClient.connect(server.ws_url + "/ws", unit)
        await use_the_hub(c)
        async def closed(reader: asyncio.StreamReader) -> bytes:
            """What the server said before closing: a byte trickled after its FIN gets an
            RST back, which the reader may see instead of the EOF; both mean closed."""
            try:
                return await reader.read()
            except ConnectionResetError:
                return b""

        async with asyncio.timeout(unit * 2):
            answers = await asyncio.gather(*(closed(r) for r, _ in socks + trickling))
        assert answers == [b""] * (HALF_OPEN + 10)  # closed, no HTTP answer at all
        assert (await c.request("ping"))["op"] == "pong"  # an upgraded socket is not cut
        await c.close()
    finally:
        stop.set()
        await asyncio.gather(*tricklers)
        for _, writer in socks + trickling:
            writer.transport.abort()

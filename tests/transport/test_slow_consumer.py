"""A client that stops reading is cut off with 4000 while the others get every message."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

import wirehub
from wirehub.config import ServerConfig
from wirehub.core.codes import CloseCode
from wirehub.core.state import ConnectionState
from wirehub.transport.runner import ServerRunner

MAX_QUEUE = 64 * 1024
CHUNK = "x" * (16 * 1024)
#: far more than loopback socket buffers can hold, so the slow client must overflow first
MAX_MESSAGES = 4000


@pytest.fixture
async def runner() -> AsyncIterator[ServerRunner]:
    """A server with a 64 KiB outbound queue per client."""
    async with ServerRunner(wirehub.App("slow"), ServerConfig(port=0, max_queue=MAX_QUEUE)) as r:
        yield r


async def recv_json(ws: ClientConnection, unit: float) -> dict[str, Any]:
    async with asyncio.timeout(unit):
        return msgspec.json.decode(await ws.recv())


async def subscribe(ws: ClientConnection, unit: float, channel: str) -> str:
    """Read the welcome, subscribe, and return this client's id."""
    welcome = await recv_json(ws, unit)
    await ws.send(msgspec.json.encode({"op": "subscribe", "channel": channel, "id": 1}).decode())
    assert (await recv_json(ws, unit))["op"] == "reply"
    return welcome["client"]


async def test_slow_consumer_is_closed_4000_and_others_get_everything(
    runner: ServerRunner, unit: float
) -> None:
    """A non-reading subscriber is closed with 4000; fast ones receive every message in order."""
    url = runner.ws_url + "/ws"
    async with contextlib.AsyncExitStack() as stack:
        # The slow client: a tiny receive buffer, and nobody calls recv() until it is cut off.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (runner.host, runner.port))
        slow = await stack.enter_async_context(ws_connect(
            url, sock=sock, open_timeout=unit, close_timeout=unit, ping_interval=None,
            compression=None))
        fast = [await stack.enter_async_context(ws_connect(
            url, open_timeout=unit, close_timeout=unit, ping_interval=None))
            for _ in range(2)]
        slow_id = await subscribe(slow, unit, "firehose")
        for ws in fast:
            await subscribe(ws, unit, "firehose")

        conn = runner.node.hub.client(slow_id)
        assert conn is not None
        cut, finished = asyncio.Event(), asyncio.Event()
        conn.state.add_listener(lambda _old, new: (
            cut.set() if new is ConnectionState.CLOSING else
            finished.set() if new is ConnectionState.CLOSED else None))

        # Publish in lock step with the fast clients until the slow one is cut off.
        app = runner.node.app
        sent = 0
        while not cut.is_set() and sent < MAX_MESSAGES:
            sent += 1
            await app.publish("firehose", {"n": sent, "pad": CHUNK})
            for ws in fast:
                message = await recv_json(ws, unit)
                assert (message["offset"], message["data"]["n"]) == (sent, sent)
        assert cut.is_set(), f"{sent} messages of 16 KiB did not overflow a 64 KiB queue"
        assert conn.close_code == CloseCode.SLOW_CONSUMER

        # The slow client reads again: what it gets is an in-order prefix, then close 4000.
        got: list[int] = []
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(unit):
                while True:
                    message = msgspec.json.decode(await slow.recv())
                    got.append(message["offset"])
        assert got == list(range(1, len(got) + 1))
        assert len(got) < sent
        assert info.value.rcvd is not None, "the connection dropped without a close frame"
        assert info.value.rcvd.code == CloseCode.SLOW_CONSUMER

        async with asyncio.timeout(unit):
            await finished.wait()
        assert conn not in runner.server.connections
        assert len(runner.server.connections) == 2
        assert slow_id not in {s.client_id for s in runner.node.hub.subscribers("firehose")}

        # The fast clients go on.
        for extra in range(sent + 1, sent + 4):
            await app.publish("firehose", {"n": extra, "pad": ""})
            for ws in fast:
                message = await recv_json(ws, unit)
                assert (message["offset"], message["data"]["n"]) == (extra, extra)

"""Server heartbeat: pings each interval; a client silent past the timeout is closed with 4001."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import WSMsgType

from wirehub.apps import default_app
from wirehub.config import ServerConfig
from wirehub.core.codes import CloseCode
from wirehub.transport.runner import ServerRunner

JSON_P = "wirehub.v1.json"
PINGS = 4


@pytest.fixture
async def runner(unit: float) -> AsyncIterator[ServerRunner]:
    """A server pinging every 0.2 s and waiting 0.3 s for the pong (at the default unit)."""
    config = ServerConfig(port=0, ping_interval=unit * 0.04, ping_timeout=unit * 0.06)
    async with ServerRunner(default_app(), config) as r:
        yield r


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def open_ws(http: aiohttp.ClientSession, runner: ServerRunner,
                  unit: float) -> aiohttp.ClientWebSocketResponse:
    """A client that sees WebSocket pings itself and answers only when told to."""
    ws = await http.ws_connect(runner.ws_url + "/ws", protocols=(JSON_P,), autoping=False,
                               heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=unit))
    welcome = await ws.receive_json(timeout=unit)
    assert welcome["ping_interval"] == runner.config.ping_interval
    return ws


async def test_client_answering_pings_stays_connected(http: aiohttp.ClientSession,
                                                      runner: ServerRunner, unit: float) -> None:
    """A client that answers every ping is still connected after several ping intervals."""
    ws = await open_ws(http, runner, unit)
    for _ in range(PINGS):  # PINGS intervals: longer than the ping timeout
        msg = await ws.receive(timeout=unit)
        assert msg.type is WSMsgType.PING, msg
        await ws.pong(msg.data)
    await ws.send_json({"op": "ping", "id": "alive"})
    while (msg := await ws.receive(timeout=unit)).type is WSMsgType.PING:
        await ws.pong(msg.data)
    assert msg.type is WSMsgType.TEXT and msg.json() == {"op": "pong", "id": "alive"}
    assert not ws.closed
    assert len(runner.server.connections) == 1
    await ws.close()


async def test_client_ignoring_pings_is_closed_4001(http: aiohttp.ClientSession,
                                                    runner: ServerRunner, unit: float) -> None:
    """A client that never answers pings (and sends nothing) is closed with 4001."""
    ws = await open_ws(http, runner, unit)
    pings = 0
    while (msg := await ws.receive(timeout=unit)).type is WSMsgType.PING:
        pings += 1
    assert pings >= 1
    assert msg.type is WSMsgType.CLOSE, msg
    assert msg.data == CloseCode.HEARTBEAT_TIMEOUT
    assert ws.close_code == CloseCode.HEARTBEAT_TIMEOUT


async def test_other_traffic_counts_as_alive(http: aiohttp.ClientSession,
                                            runner: ServerRunner, unit: float) -> None:
    """A client that never pongs but keeps sending requests is not closed."""
    ws = await open_ws(http, runner, unit)
    pings = 0
    n = 0
    while pings < PINGS:
        msg = await ws.receive(timeout=unit)
        if msg.type is WSMsgType.PING:
            pings += 1
            n += 1
            await ws.send_json({"op": "ping", "id": n})  # a request instead of a pong
        else:
            assert msg.type is WSMsgType.TEXT, msg
            assert msg.json()["op"] == "pong"
    assert not ws.closed
    await ws.close()

"""Graceful shutdown of `wirehub serve`: on SIGTERM or SIGINT clients get 1001, exit status 0."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from wirehub.core.codes import CloseCode

SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]


async def close_code(ws: ClientConnection, unit: float) -> int | None:
    """Wait for the server to close ``ws``; return the code of its close frame."""
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(unit):
            while True:
                await ws.recv()
    return info.value.rcvd.code if info.value.rcvd is not None else None


@pytest.mark.parametrize("sig", SIGNALS)
async def test_signal_closes_clients_with_1001_and_exits_0(server_process, unit: float,
                                                           sig: signal.Signals) -> None:
    """Clients of /ws (both codecs, subscribed) and /echo get 1001; the process exits 0 in time."""
    sp = server_process()
    async with contextlib.AsyncExitStack() as stack:

        async def open_ws(path: str, *protocols: str) -> ClientConnection:
            return await stack.enter_async_context(ws_connect(
                sp.ws_url + path, subprotocols=list(protocols) or None,  # type: ignore[arg-type]
                open_timeout=unit, close_timeout=unit, ping_interval=None))

        json_ws = await open_ws("/ws", "wirehub.v1.json")
        pack_ws = await open_ws("/ws", "wirehub.v1.msgpack")
        echo_ws = await open_ws("/echo")
        async with asyncio.timeout(unit):
            await json_ws.recv()  # the welcome: the server has registered us
            await pack_ws.recv()
            await json_ws.send('{"op":"subscribe","channel":"news","id":1}')
            assert msgspec.json.decode(await json_ws.recv())["op"] == "reply"
            await echo_ws.send("hi")
            assert await echo_ws.recv() == "hi"

        started = time.monotonic()
        sp.proc.send_signal(sig)
        codes = await asyncio.gather(*(close_code(ws, unit) for ws in (json_ws, pack_ws, echo_ws)))
        assert codes == [CloseCode.GOING_AWAY] * 3
        returncode = await asyncio.to_thread(sp.proc.wait, unit)
        assert returncode == 0, "".join(sp.lines)
        assert time.monotonic() - started < unit


@pytest.mark.parametrize("sig", SIGNALS)
async def test_idle_server_exits_0(server_process, unit: float, sig: signal.Signals) -> None:
    """Without clients the server stops at once on the signal, exit status 0."""
    sp = server_process()
    started = time.monotonic()
    sp.proc.send_signal(sig)
    assert await asyncio.to_thread(sp.proc.wait, unit) == 0, "".join(sp.lines)
    assert time.monotonic() - started < unit

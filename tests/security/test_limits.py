"""Resource limits over real sockets: connections in total and per IP, message and byte rates,
subscriptions, message size, JSON depth, the handshake timeout."""

from __future__ import annotations

import asyncio
import json
import re
import struct

import aiohttp
import pytest
import websockets
from websockets.frames import Opcode

from wirehub.core.codes import CloseCode

from .conftest import Serve, connect, eventually, refused_status
from .wire import RawWS, frame, http_status, text, upgrade_request


async def test_max_connections_is_503_until_one_leaves(serve: Serve, unit: float) -> None:
    """Past max_connections (/ws and /echo together) the handshake gets 503 with Retry-After."""
    runner = await serve(max_connections=2)
    a = await connect(runner, unit)
    b = await websockets.connect(runner.ws_url + "/echo", open_timeout=unit)
    for path in ("/ws", "/echo"):
        try:
            await websockets.connect(runner.ws_url + path, open_timeout=unit)
        except websockets.InvalidStatus as exc:
            assert exc.response.status_code == 503
            assert exc.response.headers["Retry-After"]
        else:
            pytest.fail("a third connection got in")
    await b.close()
    await eventually(lambda: runner.server.admission.total == 1, unit)
    c = await connect(runner, unit)
    await a.close()
    await c.close()
    await eventually(lambda: runner.server.admission.total == 0, unit)


async def test_max_connections_per_ip_is_429_for_that_address_only(serve: Serve,
                                                                   unit: float) -> None:
    """Past max_connections_per_ip one address gets 429; another address still gets in."""
    runner = await serve(max_connections_per_ip=2)
    first = [await connect(runner, unit) for _ in range(2)]
    assert await refused_status(runner.ws_url + "/ws", unit) == 429
    other = await connect(runner, unit, local_addr=("127.0.0.2", 0))
    assert runner.server.admission.per_ip == {"127.0.0.1": 2, "127.0.0.2": 1}
    first[0].ws.transport.abort()  # even a connection that just drops is released
    await eventually(lambda: runner.server.admission.per_ip.get("127.0.0.1") == 1, unit)
    again = await connect(runner, unit)
    for c in (first[1], other, again):
        await c.close()
    await eventually(lambda: runner.server.admission.total == 0, unit)


async def test_refused_handshakes_are_not_counted(serve: Serve, unit: float) -> None:
    """403, 401, 429 and 503 refusals leave the connection counts alone."""
    runner = await serve(jwt_secret="x" * 64, max_connections_per_ip=1)
    await refused_status(runner.ws_url + "/ws", unit, origin="http://evil.example")
    await refused_status(runner.ws_url + "/ws", unit,
                         additional_headers={"Authorization": "Bearer nope"})
    c = await connect(runner, unit)
    for _ in range(3):
        assert await refused_status(runner.ws_url + "/ws", unit) == 429
    assert (runner.server.admission.total, dict(runner.server.admission.per_ip)) == (
        1, {"127.0.0.1": 1})
    await c.close()


def pings(first: int, last: int, pad: int = 0) -> bytes:
    """Masked text frames with ping requests ``first``..``last``, written in one go."""
    return b"".join(text(json.dumps({"op": "ping", "id": i, "pad": "x" * pad}))
                    for i in range(first, last + 1))


async def test_message_rate_limit_then_1008(serve: Serve, unit: float) -> None:
    """Past the burst (2 s worth) each message gets `rate_limited` with its id; then 1008."""
    runner = await serve(max_messages_per_second=1, rate_limit_strikes=3)
    raw = await RawWS.open(runner.port, unit)
    raw.send(pings(1, 10))  # burst 2: ids 1-2 pass, 3-6 are strikes 1-4, 4 > 3 closes
    frames, code = await raw.data_until_close()
    assert frames[:2] == [{"op": "pong", "id": 1}, {"op": "pong", "id": 2}]
    # at least ids 3-6; the server may answer more of what it read before the close went out
    limited = [(f["op"], f["code"], f["id"]) for f in frames[2:]]
    assert limited == [("error", "rate_limited", i) for i in range(3, 3 + len(limited))]
    assert len(limited) >= 4
    assert "dropped" in frames[2]["message"]
    assert code == CloseCode.POLICY_VIOLATION
    raw.abort()


async def test_byte_rate_limit_and_strikes_count_in_a_row(serve: Serve, unit: float) -> None:
    """The byte bucket limits big messages; a message that passes resets the strike count."""
    runner = await serve(max_bytes_per_second=1000, rate_limit_strikes=1)
    raw = await RawWS.open(runner.port, unit)
    big, small = 1500, 0  # bytes of padding; burst is 2000 bytes
    raw.send(pings(1, 1, big) + pings(2, 2, big) + pings(3, 3, small) + pings(4, 4, big)
             + pings(5, 5, small) + pings(6, 7, big))
    frames, code = await raw.data_until_close()
    answers = [(f["id"], f["op"] if f["op"] == "pong" else f["code"]) for f in frames]
    assert answers == [(1, "pong"), (2, "rate_limited"), (3, "pong"), (4, "rate_limited"),
                       (5, "pong"), (6, "rate_limited"), (7, "rate_limited")]
    assert code == CloseCode.POLICY_VIOLATION
    raw.abort()


async def test_max_subscriptions_is_too_large(serve: Serve, unit: float) -> None:
    """Subscriptions past max_subscriptions get `too_large`; re-subscribing does not count."""
    runner = await serve(max_subscriptions=2)
    c = await connect(runner, unit)
    await c.ok("subscribe", channel="a")
    await c.ok("subscribe", channel="b")
    await c.ok("subscribe", channel="a")
    frame = await c.request("subscribe", channel="c")
    assert (frame["op"], frame["code"]) == ("error", "too_large")
    assert "2 subscriptions" in frame["message"]
    await c.ok("unsubscribe", channel="a")
    await c.ok("subscribe", channel="c")
    await c.close()


async def test_max_message_size_closes_1009(serve: Serve, unit: float) -> None:
    """A message over max_message_size closes with 1009; at the limit it is answered."""
    runner = await serve(max_message_size=1024)
    raw = await RawWS.open(runner.port, unit)
    head = '{"op":"ping","id":1,"pad":"'
    raw.send(text(head + "x" * (1024 - len(head) - 2) + '"}'))
    assert await raw.recv() == {"op": "pong", "id": 1}
    raw.send(text(head + "x" * (1025 - len(head) - 2) + '"}'))
    assert await raw.close_code() == CloseCode.MESSAGE_TOO_BIG
    raw.abort()


async def test_json_depth_limit(serve: Serve, unit: float) -> None:
    """JSON nested past max_json_depth gets `bad_request` naming the depth; the rest goes on."""
    runner = await serve(max_json_depth=5)
    c = await connect(runner, unit)

    def nested(depth: int) -> object:  # the envelope object is level 1
        value: object = 1
        for _ in range(depth - 1):
            value = [value]
        return value

    assert (await c.ok("publish", channel="deep", data=nested(5)))["offset"] == 1
    frame = await c.request("publish", channel="deep", data=nested(6))
    assert (frame["op"], frame["code"], frame["id"]) == ("error", "bad_request", 2)
    assert "5 levels" in frame["message"]
    # brackets inside strings are not nesting
    assert (await c.ok("publish", channel="deep", data="[[[[[[[[{{{{{{{"))["offset"] == 2
    await c.ws.send("[" * 100_000 + "]" * 100_000)  # no id to repeat
    frame = await c.push()
    assert (frame["op"], frame.get("code"), "id" in frame) == ("error", "bad_request", False), frame
    assert (await c.request("ping"))["op"] == "pong"
    await c.close()


async def test_handshake_timeout_closes_half_open_connections(serve: Serve,
                                                              unit: float) -> None:
    """A connection that does not finish its upgrade request within handshake_timeout is closed;
    an upgraded WebSocket is not."""
    runner = await serve(handshake_timeout=0.3)
    ws = await connect(runner, unit)  # older than the half-open socket below
    reader, writer = await asyncio.open_connection("127.0.0.1", runner.port)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    async with asyncio.timeout(unit):
        assert await reader.read() == b""  # EOF: the server closed it
    writer.close()
    assert (await ws.request("ping"))["op"] == "pong"
    await ws.close()
    # and the same timer closes idle HTTP keep-alive connections
    reader, writer = await asyncio.open_connection("127.0.0.1", runner.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    async with asyncio.timeout(unit):
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        while await reader.read(65536):
            pass
    writer.close()
    assert await http_status(runner.port, upgrade_request(runner.port), unit) == 101


async def test_client_close_codes_do_not_inflate_metrics(serve: Serve, unit: float) -> None:
    """Close codes no peer may send (999, 65535, ...) are not recorded as metric labels of
    their own: an anonymous client cannot mint new series in /metrics."""
    runner = await serve()
    for code in (0, 999, 1004, 2999, 5000, 65535):
        raw = await RawWS.open(runner.port, unit)
        raw.send(frame(Opcode.CLOSE, struct.pack("!H", code)))
        assert await raw.close_code() == CloseCode.PROTOCOL_ERROR
        raw.abort()
    await eventually(lambda: runner.server.admission.total == 0, unit)
    async with aiohttp.ClientSession() as http, http.get(runner.url + "/metrics") as resp:
        body = await resp.text()
    labels = set(re.findall(r'wirehub_closes_total\{code="(\d+)"\}', body))
    assert labels <= {str(int(c)) for c in CloseCode}, labels

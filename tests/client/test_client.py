"""The Python client against a real in-process server: every call, error and state."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

import wirehub
from wirehub import ConnectionState as S
from wirehub.apps import default_app
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner

MSGPACK = "wirehub.v1.msgpack"


async def next_message(sub: wirehub.Subscription, unit: float) -> Any:
    return await asyncio.wait_for(anext(sub), unit)


class Gate:
    """``send {type: "wait"}`` is answered only once ``opened`` is set."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()  #: set when a "wait" request reached the handler
        self.opened = asyncio.Event()


@pytest.fixture
async def gated_server() -> AsyncIterator[tuple[ServerRunner, Gate]]:
    """The default app plus a ``wait`` handler held back by a Gate."""
    gate = Gate()
    app = default_app()

    @app.on("wait")
    async def wait(conn: Any, data: Any) -> Any:
        gate.entered.set()
        await gate.opened.wait()
        return data

    async with ServerRunner(app, ServerConfig(port=0)) as runner:
        yield runner, gate
        gate.opened.set()


async def test_connect_as_context_manager(server):
    """async with connect(): OPEN with the welcome's client id and node, CLOSED after."""
    async with wirehub.connect(server.ws_url) as client:
        assert client.state is S.OPEN
        assert client.client_id and client.node == server.node.name
        assert client.url == server.ws_url + "/ws"
        assert client.server_ping_interval == server.config.ping_interval
    assert client.state is S.CLOSED
    assert client.closed and client.close_code == 1000


async def test_connect_awaited_and_full_url(server):
    """``await connect(url)`` works too, with the full /ws URL; close() is idempotent."""
    client = await wirehub.connect(server.ws_url + "/ws")
    assert client.state is S.OPEN
    await client.close()
    await client.close()
    assert client.state is S.CLOSED


async def test_state_callback_sequence(server):
    """on_state_change sees CONNECTING->OPEN, then OPEN->CLOSING->CLOSED on close()."""
    seen: list[tuple[S, S]] = []
    async with wirehub.connect(server.ws_url, on_state_change=lambda o, n: seen.append((o, n))):
        assert seen == [(S.CONNECTING, S.OPEN)]
    assert seen == [(S.CONNECTING, S.OPEN), (S.OPEN, S.CLOSING), (S.CLOSING, S.CLOSED)]


async def test_a_failing_state_callback_does_not_break_the_client(server):
    """An exception in on_state_change is logged, the client carries on."""
    def boom(old: S, new: S) -> None:
        raise RuntimeError("callback bug")

    async with wirehub.connect(server.ws_url, on_state_change=boom) as client:
        assert await client.send("echo", 1) == 1


async def test_publish_returns_increasing_offsets(server):
    """publish() answers with the message's offset, one more each time."""
    async with wirehub.connect(server.ws_url) as client:
        offsets = [await client.publish("counter", n) for n in range(3)]
    assert offsets == [offsets[0], offsets[0] + 1, offsets[0] + 2]


async def test_subscribe_and_receive_messages(server, unit):
    """A subscription yields Message objects with every field, in publish order."""
    async with wirehub.connect(server.ws_url) as sub_client, \
            wirehub.connect(server.ws_url) as pub_client:
        sub = await sub_client.subscribe("news")
        assert sub.channel == "news" and sub.active
        offsets = [await pub_client.publish("news", {"n": n}) for n in range(3)]
        got = [await next_message(sub, unit) for _ in range(3)]
    assert [m.data for m in got] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [m.offset for m in got] == offsets
    first = got[0]
    assert first.channel == "news" and first.sender == pub_client.client_id
    assert first.epoch and first.ts > 0
    assert (sub.offset, sub.epoch) == (offsets[-1], first.epoch)


async def test_subscribe_reply_sets_the_position(server):
    """Right after subscribe(), offset/epoch are the channel's current position."""
    async with wirehub.connect(server.ws_url) as client:
        last = await client.publish("pos", "x")
        sub = await client.subscribe("pos")
        assert sub.offset == last and isinstance(sub.epoch, str)
        assert sub.since() == {"offset": last, "epoch": sub.epoch}


async def test_async_for_over_a_subscription(server, unit):
    """``async for`` yields messages and ends cleanly once unsubscribed."""
    async with wirehub.connect(server.ws_url) as client:
        sub = await client.subscribe("loop")
        for n in range(3):
            await client.publish("loop", n)
        seen = []
        async with asyncio.timeout(unit):
            async for message in sub:
                seen.append(message.data)
                if len(seen) == 3:
                    await sub.unsubscribe()
        assert seen == [0, 1, 2]


async def test_unsubscribe_stops_delivery(server, unit):
    """After unsubscribe() nothing more arrives, proven by a later message elsewhere."""
    async with wirehub.connect(server.ws_url) as client:
        gone = await client.subscribe("gone")
        marker = await client.subscribe("marker")
        await gone.unsubscribe()
        assert not gone.active and client.channels == ["marker"]
        await client.publish("gone", "should not arrive")
        await client.publish("marker", "after")
        assert (await next_message(marker, unit)).data == "after"
        assert gone.get_nowait() is None
        with pytest.raises(StopAsyncIteration):
            await gone.get()


async def test_two_subscriptions_share_a_channel(server, unit):
    """Two subscriptions of one channel both receive; dropping one keeps the other."""
    async with wirehub.connect(server.ws_url) as client:
        a = await client.subscribe("shared")
        b = await client.subscribe("shared")
        await client.publish("shared", 1)
        assert (await next_message(a, unit)).data == 1
        assert (await next_message(b, unit)).data == 1
        await a.unsubscribe()
        await client.publish("shared", 2)
        assert (await next_message(b, unit)).data == 2


async def test_send_returns_the_handler_result(server):
    """send(type, data) answers with what the app's handler returned."""
    async with wirehub.connect(server.ws_url) as client:
        assert await client.send("echo", {"hello": ["world", 1]}) == {"hello": ["world", 1]}


async def test_ping_measures_a_round_trip(server, unit):
    """ping() returns the round-trip time in seconds."""
    async with wirehub.connect(server.ws_url) as client:
        rtt = await client.ping()
    assert 0.0 <= rtt < unit


async def test_error_reply_raises_request_error_with_code(server):
    """An ``error`` answer raises RequestError carrying the code and the request id."""
    async with wirehub.connect(server.ws_url) as client:
        with pytest.raises(wirehub.RequestError) as info:
            await client.send("no-such-type", 1)
        assert info.value.code == wirehub.ErrorCode.UNKNOWN_OP
        assert isinstance(info.value.request_id, int)
        with pytest.raises(wirehub.RequestError) as info:
            await client.publish("not a valid channel!", 1)
        assert info.value.code == wirehub.ErrorCode.BAD_REQUEST
        assert "channel" in info.value.message
        assert await client.send("echo", "still fine") == "still fine"


async def test_request_timeout(gated_server, unit):
    """A reply that does not come within request_timeout raises RequestTimeout."""
    runner, gate = gated_server
    async with wirehub.connect(runner.ws_url, request_timeout=unit / 20) as client:
        with pytest.raises(wirehub.RequestTimeout) as info:
            await client.send("wait", 1)
        gate.opened.set()  # the server reads nothing else (not even a close) meanwhile
        assert await client.send("echo", "late reply ignored") == "late reply ignored"
    assert info.value.op == "send" and info.value.timeout == unit / 20


async def test_pending_request_fails_when_the_connection_drops(gated_server, unit):
    """A request pending at a disconnect raises ConnectionClosed; it is not resent."""
    runner, gate = gated_server
    opened = asyncio.Event()
    async with wirehub.connect(runner.ws_url, backoff_base=unit / 100,
                               on_state_change=lambda o, n: n is S.OPEN and opened.set()
                               ) as client:
        opened.clear()
        pending = asyncio.ensure_future(client.send("wait", "x"))
        await asyncio.wait_for(gate.entered.wait(), unit)
        [conn] = runner.server.connections
        await conn.close(wirehub.CloseCode.FORCE_RECONNECT, "go away")
        with pytest.raises(wirehub.ConnectionClosed) as info:
            await asyncio.wait_for(pending, unit)
        assert info.value.code == 4002 and not info.value.final
        gate.opened.set()
        await asyncio.wait_for(opened.wait(), unit)
        assert await client.send("echo", "again") == "again"


async def test_msgpack_subprotocol(server, unit):
    """wirehub.v1.msgpack: binary frames; bytes survive, pub/sub and errors work."""
    async with wirehub.connect(server.ws_url, subprotocol=MSGPACK) as client:
        assert client._session is not None and client._session.codec.binary
        assert await client.send("echo", b"\x00\xffraw") == b"\x00\xffraw"
        sub = await client.subscribe("bin")
        await client.publish("bin", {"b": b"\x01"})
        assert (await next_message(sub, unit)).data == {"b": b"\x01"}
        with pytest.raises(wirehub.RequestError):
            await client.send("nope")


async def test_json_and_msgpack_clients_talk_to_each_other(server, unit):
    """A message published in JSON arrives intact to a MessagePack subscriber."""
    async with wirehub.connect(server.ws_url, subprotocol=MSGPACK) as mp, \
            wirehub.connect(server.ws_url) as js:
        sub = await mp.subscribe("mixed")
        await js.publish("mixed", {"x": [1, 2.5, "three", None]})
        assert (await next_message(sub, unit)).data == {"x": [1, 2.5, "three", None]}


async def test_unsupported_subprotocol_is_a_handshake_error(server):
    """The server refuses an unknown subprotocol with HTTP 400: HandshakeError(400, body)."""
    client = wirehub.connect(server.ws_url, subprotocol="wirehub.v9.xml")
    with pytest.raises(wirehub.HandshakeError) as info:
        await client
    assert info.value.status == 400
    assert "unsupported subprotocol" in info.value.body
    assert client.state is S.CLOSED and client.closed


async def test_connection_refused_fails_fast(unused_tcp_port, unit):
    """Nothing listening: the first connect raises ConnectionClosed(final=True) at once."""
    with pytest.raises(wirehub.ConnectionClosed) as info:
        async with asyncio.timeout(unit):
            await wirehub.connect(f"ws://127.0.0.1:{unused_tcp_port}")
    assert info.value.final and info.value.code is None


async def test_calls_after_close_raise_final(server):
    """After close() every call raises ConnectionClosed(final=True)."""
    client = await wirehub.connect(server.ws_url)
    await client.close()
    for call in (client.publish("x", 1), client.send("echo", 1), client.subscribe("x"),
                 client.ping()):
        with pytest.raises(wirehub.ConnectionClosed) as info:
            await call
        assert info.value.final


async def test_close_ends_subscriptions_quietly(server, unit):
    """close() ends every subscription's iteration without an exception."""
    client = await wirehub.connect(server.ws_url)
    sub = await client.subscribe("bye")
    waiting = asyncio.ensure_future(sub.get())
    await client.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, unit)


async def test_calls_before_open_are_refused(server):
    """Using a client that was never opened is a RuntimeError, not a hang."""
    client = wirehub.connect(server.ws_url)
    assert client.state is S.CONNECTING
    with pytest.raises(RuntimeError):
        await client.publish("x", 1)


@pytest.mark.parametrize("option", ["backoff_base", "backoff_cap", "request_timeout",
                                    "open_timeout"])
def test_invalid_timing_options_are_config_errors(option):
    """Zero or negative delays and timeouts are refused up front, naming the option."""
    with pytest.raises(wirehub.ConfigError) as info:
        wirehub.connect("ws://127.0.0.1:1", **{option: 0})
    assert info.value.key == option


def test_client_never_imports_the_server_side():
    """Importing wirehub.client loads neither the node, the brokers nor the transport."""
    code = ("import sys, wirehub.client, wirehub; "
            "bad = [m for m in sys.modules if m.startswith(('wirehub.node', 'wirehub.brokers', "
            "'wirehub.transport', 'aiohttp'))]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

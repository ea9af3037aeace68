"""Reconnection: back and resubscribed after a loss or a retryable code; final codes stop it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

import wirehub
from wirehub import CloseCode
from wirehub import ConnectionState as S
from wirehub.apps import default_app
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


class States:
    """Records on_state_change calls; lets a test await the n-th arrival in a state."""

    def __init__(self) -> None:
        self.seen: list[tuple[S, S]] = []
        self._changed = asyncio.Event()

    def __call__(self, old: S, new: S) -> None:
        self.seen.append((old, new))
        self._changed.set()

    def count(self, state: S) -> int:
        return sum(1 for _, new in self.seen if new is state)

    async def reach(self, state: S, times: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while self.count(state) < times:
                self._changed.clear()
                await self._changed.wait()


def assert_retry_loop(transitions: list[tuple[S, S]]) -> None:
    """Between losing and regaining the connection only retry attempts happen."""
    assert transitions[0] == (S.CLOSED, S.CONNECTING)
    assert transitions[-1] == (S.CONNECTING, S.OPEN)
    assert set(transitions[1:-1]) <= {(S.CONNECTING, S.CLOSED), (S.CLOSED, S.CONNECTING)}


def fast(unit: float, states: States, **extra: Any) -> dict[str, Any]:
    """Client options with a short backoff so that tests do not wait long."""
    return {"backoff_base": unit / 100, "backoff_cap": unit / 10, "on_state_change": states,
            "request_timeout": unit, **extra}


@pytest.fixture
async def small_server() -> AsyncIterator[ServerRunner]:
    """The default app with a 1 KiB message limit (bigger messages: close 1009)."""
    async with ServerRunner(default_app(), ServerConfig(port=0, max_message_size=1024)) as r:
        yield r


async def test_survives_sigkill_and_restart_on_the_same_port(server_process, unit):
    """After SIGKILL and a restart the client reconnects; the old Subscription gets new posts."""
    first = server_process()
    states = States()
    async with wirehub.connect(first.ws_url, **fast(unit, states)) as client:
        sub = await client.subscribe("news")
        old_id, old_epoch = client.client_id, sub.epoch
        first.proc.kill()
        first.proc.wait()
        await states.reach(S.CLOSED, 1, unit)
        second = await asyncio.to_thread(server_process, port=first.port)
        await states.reach(S.OPEN, 2, unit * 2)
        assert client.reconnects == 1 and client.client_id != old_id
        assert sub.active and sub.epoch != old_epoch  # position from the resubscribe reply
        async with wirehub.connect(second.ws_url) as publisher:
            offset = await publisher.publish("news", "after restart")
        message = await asyncio.wait_for(anext(sub), unit)
        assert (message.data, message.offset) == ("after restart", offset)
    assert states.seen[:2] == [(S.CONNECTING, S.OPEN), (S.OPEN, S.CLOSED)]
    reopened = states.seen.index((S.CONNECTING, S.OPEN), 1)
    assert_retry_loop(states.seen[2:reopened + 1])
    assert states.seen[reopened + 1:] == [(S.OPEN, S.CLOSING), (S.CLOSING, S.CLOSED)]


async def test_graceful_restart_closes_with_1001_and_reconnects(server_process, unit):
    """SIGTERM closes with 1001 (retryable): OPEN->CLOSING->CLOSED, then back to OPEN."""
    first = server_process()
    states = States()
    async with wirehub.connect(first.ws_url, **fast(unit, states)) as client:
        sub = await client.subscribe("news")
        await asyncio.to_thread(first.stop, signal.SIGTERM)  # the loop answers the close
        await states.reach(S.CLOSED, 1, unit)
        second = await asyncio.to_thread(server_process, port=first.port)
        await states.reach(S.OPEN, 2, unit * 2)
        await client.publish("news", "own message after restart")
        assert (await asyncio.wait_for(anext(sub), unit)).data == "own message after restart"
        assert second.proc.poll() is None
    assert states.seen[1:3] == [(S.OPEN, S.CLOSING), (S.CLOSING, S.CLOSED)]
    assert_retry_loop(states.seen[3:states.seen.index((S.CONNECTING, S.OPEN), 1) + 1])


async def test_retryable_close_code_reconnects_and_resubscribes(server, unit):
    """Close 4002 (force reconnect): the client is back, resubscribed, before OPEN."""
    states = States()
    async with wirehub.connect(server.ws_url, **fast(unit, states)) as client, \
            wirehub.connect(server.ws_url) as publisher:
        a, b = await client.subscribe("a"), await client.subscribe("b")
        [conn] = [c for c in server.server.connections if c.client_id == client.client_id]
        await conn.close(CloseCode.FORCE_RECONNECT, "please reconnect")
        await states.reach(S.OPEN, 2, unit)
        await publisher.publish("a", 1)
        await publisher.publish("b", 2)
        assert (await asyncio.wait_for(anext(a), unit)).data == 1
        assert (await asyncio.wait_for(anext(b), unit)).data == 2
    assert states.seen[:5] == [(S.CONNECTING, S.OPEN), (S.OPEN, S.CLOSING),
                               (S.CLOSING, S.CLOSED), (S.CLOSED, S.CONNECTING),
                               (S.CONNECTING, S.OPEN)]


async def test_http_503_while_draining_is_retried(server, unit):
    """Reconnect attempts refused with 503 (server draining) are retried until accepted."""
    states = States()
    async with wirehub.connect(server.ws_url, **fast(unit, states)) as client:
        await server.server.drain(CloseCode.SERVICE_RESTART, "restarting")  # 1012, retryable
        await states.reach(S.CLOSED, 2, unit)  # one refused attempt at least
        server.server.accepting = True
        await states.reach(S.OPEN, 2, unit)
        assert await client.send("echo", "back") == "back"


async def test_message_too_big_is_final(small_server, unit):
    """A message over the server's limit closes with 1009, which is final: no reconnect."""
    states = States()
    client = await wirehub.connect(small_server.ws_url, **fast(unit, states))
    sub = await client.subscribe("news")
    with pytest.raises(wirehub.ConnectionClosed) as info:
        await client.publish("news", "x" * 4096)
    assert (info.value.code, info.value.final) == (CloseCode.MESSAGE_TOO_BIG, True)
    closed = await asyncio.wait_for(client.wait_closed(), unit)
    assert closed.code == 1009 and client.closed and client.state is S.CLOSED
    with pytest.raises(wirehub.ConnectionClosed) as info:  # the iterator says why it ended
        await asyncio.wait_for(anext(sub), unit)
    assert info.value.final and info.value.code == 1009
    with pytest.raises(wirehub.ConnectionClosed):  # later calls too
        await client.publish("news", "small")
    assert states.seen == [(S.CONNECTING, S.OPEN), (S.OPEN, S.CLOSING), (S.CLOSING, S.CLOSED)]
    assert client.reconnects == 0


async def test_final_application_code_stops_reconnecting(server, unit):
    """A 4500-4999 close (here 4500 unauthorized) ends the client for good."""
    states = States()
    client = await wirehub.connect(server.ws_url, **fast(unit, states))
    pending_sub = await client.subscribe("x")
    [conn] = list(server.server.connections)
    await conn.close(CloseCode.UNAUTHORIZED, "token revoked")
    closed = await asyncio.wait_for(client.wait_closed(), unit)
    assert (closed.code, closed.reason, closed.final) == (4500, "token revoked", True)
    assert states.count(S.CONNECTING) == 0 and client.state is S.CLOSED
    with pytest.raises(wirehub.ConnectionClosed):
        await asyncio.wait_for(anext(pending_sub), unit)
    await client.close()  # harmless once closed


async def test_reconnect_false_makes_every_close_final(server, unit):
    """With reconnect=False even a retryable close ends the client."""
    states = States()
    client = await wirehub.connect(server.ws_url, **fast(unit, states, reconnect=False))
    [conn] = list(server.server.connections)
    await conn.close(CloseCode.FORCE_RECONNECT, "")
    closed = await asyncio.wait_for(client.wait_closed(), unit)
    assert closed.code == 4002 and closed.final
    assert states.count(S.CONNECTING) == 0


async def test_close_while_reconnecting_stops_the_loop(server_process, unit):
    """close() during the retry loop ends it: CLOSED for good, nothing left running."""
    first = server_process()
    states = States()
    client = await wirehub.connect(first.ws_url, **fast(unit, states))
    first.proc.kill()
    first.proc.wait()
    await states.reach(S.CONNECTING, 1, unit)
    await asyncio.wait_for(client.close(), unit)
    assert client.state is S.CLOSED and client.closed
    assert client._supervisor is not None and client._supervisor.done()
    with pytest.raises(wirehub.ConnectionClosed):
        await client.send("echo", 1)

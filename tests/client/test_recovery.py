"""The Python client recovers what it missed while reconnecting, or says it could not."""

from __future__ import annotations

import asyncio

import wirehub
from wirehub import App, CloseCode, ConnectionState
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


def _app() -> App:
    app = App("recovery-test")
    app.namespace("small", history_size=10)
    return app


async def _cut_off(runner: ServerRunner, client: wirehub.Client, states: list,
                   changed: asyncio.Event, unit: float) -> None:
    """Refuse new handshakes, then close the client's connection from the server side."""
    runner.server.accepting = False  # reconnect attempts get HTTP 503 (retryable)
    [conn] = [c for c in runner.server.connections if c.client_id == client.client_id]
    await conn.close(CloseCode.FORCE_RECONNECT, "test")
    while client.state is ConnectionState.OPEN:
        changed.clear()
        await asyncio.wait_for(changed.wait(), unit)


async def _back(runner: ServerRunner, client: wirehub.Client, changed: asyncio.Event,
                unit: float) -> None:
    runner.server.accepting = True
    while client.state is not ConnectionState.OPEN:
        changed.clear()
        await asyncio.wait_for(changed.wait(), unit * 2)


async def test_missed_messages_arrive_exactly_once_in_order(unit):
    """Away while 100 messages are published, the client gets exactly those 100, in order."""
    async with ServerRunner(_app(), ServerConfig(port=0)) as runner:
        states: list = []
        changed = asyncio.Event()

        def on_state(old, new):
            states.append(new)
            changed.set()

        async with wirehub.connect(runner.ws_url + "/ws", backoff_base=0.05, backoff_cap=0.2,
                                   on_state_change=on_state) as client:
            sub = await client.subscribe("room")
            await client.publish("room", "before")
            first = await asyncio.wait_for(sub.get(), unit)
            await _cut_off(runner, client, states, changed, unit)
            for n in range(100):
                await runner.node.publish("room", n)
            await _back(runner, client, changed, unit)
            got = [await asyncio.wait_for(sub.get(), unit) for _ in range(100)]
            assert [m.data for m in got] == list(range(100))
            assert [m.offset for m in got] == list(range(first.offset + 1, first.offset + 101))
            assert sub.recovered is True and sub.gaps == 0
            await client.publish("room", "after")
            live = await asyncio.wait_for(sub.get(), unit)
            assert live.data == "after" and live.offset == first.offset + 101  # no duplicate
            assert client.reconnects == 1
            assert ConnectionState.CONNECTING in states


async def test_window_exceeded_is_reported(unit):
    """Past the history window the client reports the gap (recovered False, callback)."""
    async with ServerRunner(_app(), ServerConfig(port=0)) as runner:
        changed = asyncio.Event()
        failed: list[str] = []
        async with wirehub.connect(runner.ws_url + "/ws", backoff_base=0.05, backoff_cap=0.2,
                                   on_state_change=lambda old, new: changed.set(),
                                   on_recovery_failed=failed.append) as client:
            sub = await client.subscribe("small:x")
            await client.publish("small:x", "seen")
            await asyncio.wait_for(sub.get(), unit)
            await _cut_off(runner, client, [], changed, unit)
            for n in range(50):  # history keeps 10
                await runner.node.publish("small:x", n)
            await _back(runner, client, changed, unit)
            assert failed == ["small:x"]
            assert sub.recovered is False and sub.gaps == 1
            await runner.node.publish("small:x", "next")
            nxt = await asyncio.wait_for(sub.get(), unit)
            assert nxt.data == "next"  # nothing stale replayed before it

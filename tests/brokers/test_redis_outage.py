"""Redis goes away for a while: nodes keep their local connections, /healthz says
"degraded", nodes reconnect and resubscribe by themselves, and a client whose channel
may have a gap learns it (messages repaired, or recovered: false) — never silently.

Two in-process nodes share a private Redis; clients are wirehub's own Python client,
which reconnects and recovers with ``since`` as a browser page would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

import wirehub
from tests.conftest import RedisServer, start_redis
from wirehub import App, ConnectionState, ErrorCode, RequestError
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


def _app() -> App:
    app = App("outage-test")
    app.namespace("small", history_size=2)
    return app


@contextlib.asynccontextmanager
async def _nodes(url_a: str, url_b: str) -> AsyncIterator[tuple[ServerRunner, ServerRunner]]:
    """Nodes "a" and "b" on port 0, each with its own broker connection."""
    def config(url: str, name: str) -> ServerConfig:
        return ServerConfig(port=0, broker=url, node_name=name, drain_period=0.0)

    async with ServerRunner(_app(), config(url_a, "a")) as a, \
            ServerRunner(_app(), config(url_b, "b")) as b:
        yield a, b


async def _status(runner: ServerRunner) -> str:
    async with aiohttp.ClientSession() as http, http.get(runner.url + "/healthz") as resp:
        return (await resp.json())["status"]


async def _until_status(runner: ServerRunner, status: str, timeout: float) -> None:
    """Poll /healthz until it reports ``status`` (nothing announces the change)."""
    async with asyncio.timeout(timeout):
        while await _status(runner) != status:
            await asyncio.sleep(0.05)


class Watched:
    """A wirehub client with what its callbacks reported."""

    def __init__(self) -> None:
        self.client: wirehub.Client
        self.failed: list[str] = []
        self._changed = asyncio.Event()

    def on_state(self, old: ConnectionState, new: ConnectionState) -> None:
        self._changed.set()

    def on_recovery_failed(self, channel: str) -> None:
        self.failed.append(channel)
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    @property
    def untouched(self) -> bool:
        return self.client.state is ConnectionState.OPEN and self.client.reconnects == 0


async def _connect(stack: contextlib.AsyncExitStack, runner: ServerRunner) -> Watched:
    w = Watched()
    w.client = await stack.enter_async_context(wirehub.connect(
        runner.ws_url + "/ws", backoff_base=0.05, backoff_cap=0.2,
        on_state_change=w.on_state, on_recovery_failed=w.on_recovery_failed))
    return w


async def _next(sub: wirehub.Subscription, unit: float) -> Any:
    return await asyncio.wait_for(sub.get(), unit)


async def _restarted(server: RedisServer) -> RedisServer:
    return await asyncio.to_thread(start_redis, server.port)


async def test_redis_restart_loses_data_and_clients_are_told(redis_server, unit):
    """Redis killed, then back empty: connections stay, degraded then ok, recovered false."""
    # Connections stay open and /healthz says degraded while Redis is down; when it is
    # back on the same port without its data, both nodes recover and their clients are
    # told recovered: false (new epoch); delivery across nodes goes on.
    restarted: RedisServer | None = None
    async with _nodes(redis_server.url, redis_server.url) as (a, b), \
            contextlib.AsyncExitStack() as stack:
        ca, cb = await _connect(stack, a), await _connect(stack, b)
        sa, sb = await ca.client.subscribe("room"), await cb.client.subscribe("room")
        await ca.client.publish("room", "before")
        before = await _next(sb, unit)
        assert before.data == (await _next(sa, unit)).data == "before"
        try:
            redis_server.stop(signal.SIGKILL)
            await _until_status(a, "degraded", unit)
            await _until_status(b, "degraded", unit)
            with pytest.raises(RequestError) as info:  # answered at once, not left hanging
                await ca.client.publish("room", "lost")
            assert info.value.code == ErrorCode.INTERNAL
            await cb.client.ping()
            assert ca.untouched and cb.untouched  # local connections live through the outage

            restarted = await _restarted(redis_server)
            await _until_status(a, "ok", unit * 2)
            await _until_status(b, "ok", unit * 2)
            # history is gone: each node sends its subscribers to recover, which fails openly
            await ca.until(lambda: ca.failed == ["room"], unit * 2)
            await cb.until(lambda: cb.failed == ["room"], unit * 2)
            assert sa.recovered is False and sb.recovered is False and sa.gaps == sb.gaps == 1
            assert a.node.continuity.resyncs == b.node.continuity.resyncs == 1

            await ca.client.publish("room", "after")  # delivered across nodes again
            after = await _next(sb, unit)
            assert after.data == (await _next(sa, unit)).data == "after"
            assert after.offset == 1 and after.epoch != before.epoch
        finally:
            if restarted is not None:
                restarted.proc.kill()
                restarted.proc.wait()


async def test_redis_hang_is_detected_and_survived(redis_server, unit):
    """Redis hung (SIGSTOP): degraded with connections open; resumed: ok, nothing lost."""
    async with _nodes(redis_server.url, redis_server.url) as (a, b), \
            contextlib.AsyncExitStack() as stack:
        ca, cb = await _connect(stack, a), await _connect(stack, b)
        sa, sb = await ca.client.subscribe("room"), await cb.client.subscribe("room")
        await cb.client.publish("room", "before")
        assert (await _next(sa, unit)).data == (await _next(sb, unit)).data == "before"
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            await _until_status(a, "degraded", unit)
            await _until_status(b, "degraded", unit)
            await ca.client.ping()
            await cb.client.ping()
            assert ca.untouched and cb.untouched
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        await _until_status(a, "ok", unit * 2)
        await _until_status(b, "ok", unit * 2)
        await cb.client.publish("room", "after")
        assert (await _next(sa, unit)).data == (await _next(sb, unit)).data == "after"
        assert ca.untouched and cb.untouched and ca.failed == cb.failed == []
        for runner in (a, b):  # each node checked its channel and found nothing missing
            assert runner.node.continuity.repaired == runner.node.continuity.resyncs == 0


async def _kill_pubsub_of(admin: aioredis.Redis, user: str) -> None:
    """CLIENT KILL the pub/sub connection of the node that logs in as ``user``."""
    clients = await admin.client_list()
    [victim] = [c for c in clients if c["user"] == user and "P" in c["flags"]]
    assert await admin.client_kill_filter(_id=victim["id"]) == 1


async def test_pubsub_drop_on_one_node_never_leaves_a_silent_gap(redis_server, unit):
    """Node b's pub/sub cut while a publishes: each of b's channels is repaired or recovered."""
    # b repairs a channel it was delivering from history; a channel it had delivered
    # nothing on, and one whose gap left history, send their clients to recover
    # (recovered true with the messages, or recovered false).
    admin = aioredis.from_url(redis_server.url, decode_responses=True)
    await admin.acl_setuser("nodeb", enabled=True, passwords=["+pw"], keys=["*"],
                            channels=["*"], commands=["+@all"])
    url_b = f"redis://nodeb:pw@127.0.0.1:{redis_server.port}/0"
    try:
        async with _nodes(redis_server.url, url_b) as (a, b), \
                contextlib.AsyncExitStack() as stack:
            ca = await _connect(stack, a)
            live, quiet, small = [await _connect(stack, b) for _ in range(3)]
            sa = await ca.client.subscribe("room")
            s_live = await live.client.subscribe("room")
            s_quiet = await quiet.client.subscribe("quiet")
            s_small = await small.client.subscribe("small:x")
            await a.node.publish("room", "r0")
            await a.node.publish("small:x", "s0")
            assert (await _next(s_live, unit)).data == (await _next(sa, unit)).data == "r0"
            assert (await _next(s_small, unit)).data == "s0"

            await admin.acl_setuser("nodeb", enabled=False)  # b cannot log in again...
            await _kill_pubsub_of(admin, "nodeb")  # ...after losing its pub/sub connection
            for n in range(1, 4):  # b's pub/sub is gone once CLIENT KILL has returned
                await a.node.publish("room", f"r{n}")
                await a.node.publish("quiet", f"q{n}")
            for n in range(1, 6):  # history keeps 2: s1..s3 are gone for good
                await a.node.publish("small:x", f"s{n}")
            await _until_status(b, "degraded", unit)
            assert await _status(a) == "ok"
            assert [(await _next(sa, unit)).data for _ in range(3)] == ["r1", "r2", "r3"]

            await admin.acl_setuser("nodeb", enabled=True)
            await _until_status(b, "ok", unit * 2)
            # repaired on the node: in order, exactly once, the connection untouched
            got = [await _next(s_live, unit) for _ in range(3)]
            assert [m.data for m in got] == ["r1", "r2", "r3"]
            assert [m.offset for m in got] == [2, 3, 4]
            assert b.node.continuity.repaired == 3 and live.untouched
            # nothing delivered on b before: the client recovers the messages itself
            assert [(await _next(s_quiet, unit)).data for _ in range(3)] == ["q1", "q2", "q3"]
            assert s_quiet.recovered is True and quiet.client.reconnects == 1
            # the gap left history: the client is told
            await small.until(lambda: small.failed == ["small:x"], unit * 2)
            assert s_small.recovered is False and s_small.gaps == 1
            assert b.node.continuity.resyncs == 2

            await a.node.publish("small:x", "s6")  # and live delivery goes on everywhere
            await a.node.publish("room", "r4")
            assert (await _next(s_small, unit)).data == "s6"
            assert (await _next(s_live, unit)).data == (await _next(sa, unit)).data == "r4"
            assert ca.untouched and live.untouched and quiet.failed == live.failed == []
    finally:
        await admin.aclose()

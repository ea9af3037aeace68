"""Broker fixtures: every broker kind for the contract suite, one private Redis per module."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import RedisServer, start_redis
from wirehub.brokers import MemoryBroker
from wirehub.brokers.base import Broker, Publication
from wirehub.brokers.redis import RedisBroker


class Recorder:
    """A BrokerHandler that records deliveries and lets a test await them."""

    def __init__(self) -> None:
        self.publications: list[Publication] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    def on_publication(self, pub: Publication) -> None:
        self.publications.append(pub)
        self._changed.set()

    def on_event(self, channel: str, event: dict[str, Any]) -> None:
        self.events.append((channel, event))
        self._changed.set()

    async def wait(self, timeout: float, *, publications: int = 0, events: int = 0) -> None:
        """Until at least that many publications and events have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.publications) < publications or len(self.events) < events:
                self._changed.clear()
                await self._changed.wait()

    def on(self, channel: str) -> list[Publication]:
        return [p for p in self.publications if p.channel == channel]


@pytest.fixture(scope="module")
def module_redis() -> Iterator[RedisServer]:
    """One private redis-server for the whole module, killed by PID afterwards."""
    server = start_redis()
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


async def flushed(url: str) -> None:
    client = aioredis.from_url(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()


@pytest.fixture
def rec() -> Recorder:
    """The handler of the ``broker`` fixture's broker."""
    return Recorder()


@pytest.fixture(params=["memory", "redis"])
async def broker(request: pytest.FixtureRequest, rec: Recorder) -> AsyncIterator[Broker]:
    """A started broker of each kind (Redis: flushed), delivering to ``rec``."""
    if request.param == "memory":
        b: Broker = MemoryBroker()
    else:
        server: RedisServer = request.getfixturevalue("module_redis")
        await flushed(server.url)
        b = RedisBroker(server.url)
    b.set_handler(rec)
    await b.start()
    yield b
    await b.close()

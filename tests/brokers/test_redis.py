"""What only the Redis broker does: many nodes, expiring presence, epochs, liveness."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.brokers.conftest import Recorder, flushed
from tests.conftest import RedisServer, start_redis
from wirehub.brokers.redis import RedisBroker
from wirehub.exceptions import BrokerError

# A node in another process: it records presence, says "ready", and waits to be killed.
_GHOST_NODE = """
import asyncio, sys
from wirehub.brokers.redis import RedisBroker

async def main():
    broker = RedisBroker(sys.argv[1], presence_ttl=float(sys.argv[2]))
    await broker.start()
    await broker.add_presence("room", "ghost", {"client": "ghost", "user": None, "info": None})
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def _started(url: str, **options: float) -> RedisBroker:
    broker = RedisBroker(url, **options)  # type: ignore[arg-type]
    broker.rec = Recorder()  # type: ignore[attr-defined]
    broker.set_handler(broker.rec)  # type: ignore[attr-defined]
    await broker.start()
    return broker


@pytest.fixture
async def pair(module_redis: RedisServer) -> AsyncIterator[tuple[RedisBroker, RedisBroker]]:
    """Two nodes' brokers on one (flushed) Redis."""
    await flushed(module_redis.url)
    a = await _started(module_redis.url)
    b = await _started(module_redis.url)
    yield a, b
    await a.close()
    await b.close()


async def _until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` (for states no event announces: expiry, reachability)."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def test_nodes_see_concurrent_publishes_in_one_order(pair, unit) -> None:
    """2x200 interleaved publishes from two nodes: both deliver the same 400, offsets 1..400."""
    a, b = pair
    await a.subscribe("race")
    await b.subscribe("race")
    published = await asyncio.gather(
        *(node.publish("race", f"{name}{i}", client=name)
          for i in range(200) for node, name in ((a, "a"), (b, "b"))))
    await a.rec.wait(unit * 2, publications=400)
    await b.rec.wait(unit * 2, publications=400)
    assert a.rec.publications == b.rec.publications
    assert [p.offset for p in a.rec.publications] == list(range(1, 401))
    assert sorted(published, key=lambda p: p.offset) == a.rec.publications
    assert len({p.epoch for p in published}) == 1


async def test_subscribe_returns_once_redis_confirmed_it(pair, unit) -> None:
    """A publication made by another node right after subscribe() returns is delivered."""
    a, b = pair
    for n in range(20):
        await b.subscribe(f"c{n}")
        await a.publish(f"c{n}", n)
    await b.rec.wait(unit, publications=20)
    assert [p.data for p in b.rec.publications] == list(range(20))


async def test_history_list_expires_with_history_ttl(pair) -> None:
    """Redis itself drops a channel's history history_ttl seconds after its last message."""
    a, _ = pair
    await a.publish("c", "x", history_ttl=1.5)
    client = aioredis.from_url(a.url)
    try:
        assert 0 < await client.pttl("wh:{c}:hist") <= 2000
    finally:
        await client.aclose()


async def test_small_presence_ttl_keeps_the_entry(pair) -> None:
    """A presence_ttl under a second still stores the entry (the keys get a positive TTL)."""
    _, b = pair
    quick = await _started(b.url, presence_ttl=0.2)
    try:
        await quick.add_presence("room", "c1", {"client": "c1"})
        client = aioredis.from_url(b.url)
        try:
            assert await client.pttl("wh:{room}:pres") > 0
            assert await client.pttl("wh:{room}:pexp") > 0
        finally:
            await client.aclose()
    finally:
        await quick.close()


async def test_dead_node_drops_out_of_presence(pair, unit) -> None:
    """A killed node's presence entries stay while it refreshes them, vanish after presence_ttl."""
    _, b = pair
    ttl = unit / 5
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _GHOST_NODE, b.url, str(ttl), stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), unit * 2) == b"ready\n"
        await b.add_presence("room", "alive", {"client": "alive", "user": None, "info": None})
        assert set(await b.presence("room")) == {"ghost", "alive"}
        await asyncio.sleep(ttl * 2)  # past its first expiry: its node refreshed it
        assert set(await b.presence("room")) == {"ghost", "alive"}
    finally:
        proc.kill()  # SIGKILL by PID: no cleanup, its entries are left behind
        await proc.wait()

    async def ghost_gone() -> bool:
        return "ghost" not in await b.presence("room")

    await _until(ghost_gone, ttl + unit)
    assert set(await b.presence("room")) == {"alive"}
    client = aioredis.from_url(b.url)
    try:
        assert await client.hkeys("wh:{room}:pres") == [b"alive"]  # purged, not just hidden
    finally:
        await client.aclose()


async def test_remove_on_close(pair) -> None:
    """A node that closes cleanly takes its clients out of presence at once."""
    a, b = pair
    await a.add_presence("room", "c1", {"client": "c1"})
    await a.close()
    assert await b.presence("room") == {}


async def test_epoch_changes_when_redis_loses_its_data(redis_server, unit) -> None:
    """After a Redis restart without persistence every channel starts a new epoch at offset 1."""
    broker = await _started(redis_server.url)
    restarted: RedisServer | None = None
    try:
        before = await broker.publish("c", "old")
        quiet = await broker.position("quiet")
        redis_server.stop(signal.SIGKILL)
        restarted = start_redis(port=redis_server.port)
        after = await broker.publish("c", "new")
        assert after.offset == 1 and after.epoch != before.epoch
        hist = await broker.history("c")
        assert hist.epoch == after.epoch and hist.publications == [after]  # "old" is gone
        moved = await broker.position("quiet")
        assert moved.offset == 0 and moved.epoch != quiet.epoch
    finally:
        await broker.close()
        if restarted is not None:
            restarted.proc.kill()
            restarted.proc.wait()


async def test_idle_node_notices_redis_gone_and_back(redis_server, unit) -> None:
    """Without any subscription, healthy still turns False while Redis is down, then True."""
    broker = await _started(redis_server.url, health_interval=0.2, reconnect_delay=0.1)
    restarted: RedisServer | None = None

    async def healthy() -> bool:
        return broker.healthy

    async def unhealthy() -> bool:
        return not broker.healthy

    try:
        assert broker.healthy
        redis_server.stop(signal.SIGKILL)
        await _until(unhealthy, unit)
        with pytest.raises(BrokerError) as info:
            await broker.subscribe("c")
        assert info.value.action == "subscribe"
        with pytest.raises(BrokerError):
            await broker.publish("c", 1)
        restarted = start_redis(port=redis_server.port)
        await _until(healthy, unit)
        await broker.subscribe("c")
        await broker.publish("c", "back")
        await broker.rec.wait(unit, publications=1)
    finally:
        await broker.close()
        if restarted is not None:
            restarted.proc.kill()
            restarted.proc.wait()


async def test_presence_is_written_again_after_redis_lost_it(redis_server, unit) -> None:
    """Once Redis is back without its data, the node records its clients' presence again."""
    broker = await _started(redis_server.url, health_interval=0.2, reconnect_delay=0.1)
    restarted: RedisServer | None = None
    entry = {"client": "c1", "user": "ada", "info": None}

    async def unhealthy() -> bool:
        return not broker.healthy

    async def listed() -> bool:
        return broker.healthy and await broker.presence("room") == {"c1": entry}

    try:
        await broker.add_presence("room", "c1", entry)
        redis_server.stop(signal.SIGKILL)
        await _until(unhealthy, unit)
        restarted = start_redis(port=redis_server.port)
        await _until(listed, unit)  # well before the refresher's turn (presence_ttl / 3 = 10 s)
    finally:
        await broker.close()
        if restarted is not None:
            restarted.proc.kill()
            restarted.proc.wait()

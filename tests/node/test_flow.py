"""Per-subscription max_rate conflation and slow-consumer policies, over real sockets."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import websockets

from tests.rawclient import RawClient
from wirehub import App
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


async def stalled_client(url: str) -> websockets.ClientConnection:
    """A real client with a tiny receive buffer; it stops reading when it stops calling recv.

    websockets pauses the socket once one message waits (max_queue=1), so the
    server's writes back up quickly.
    """
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no autotuning
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await websockets.connect(url, sock=sock, max_queue=1, max_size=2**20,
                                    compression=None)


def _app() -> App:
    app = App("flow-test")
    app.namespace("px", slow_consumer="conflate", history_size=1)
    app.namespace("drop", slow_consumer="drop_oldest", history_size=1)
    return app


async def test_max_rate_caps_deliveries_and_keeps_newest(unit):
    """With max_rate=5 a burst of 200 updates arrives as a few, newest last, never older."""
    async with ServerRunner(_app(), ServerConfig(port=0)) as runner:
        url = runner.ws_url + "/ws"
        sub = await RawClient.connect(url, unit)
        pub = await RawClient.connect(url, unit)
        await sub.ok("subscribe", channel="px:A", max_rate=5)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(200):
            await pub.ok("publish", channel="px:A", data=n)
        published_for = loop.time() - start
        got = []
        while not got or got[-1]["data"] != 199:
            got += await sub.messages(1)
        elapsed = loop.time() - start
        offsets = [m["offset"] for m in got]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        assert got[-1]["data"] == 199
        # at most one per 0.2 s window after the first, whatever the wall clock did
        assert len(got) <= 1 + int(elapsed * 5) + 1
        assert len(got) < 200 or published_for > 40
        await sub.close()
        await pub.close()


async def test_slow_conflating_subscriber_is_not_cut_fast_one_gets_all(unit):
    """A subscriber that stops reading is conflated, not cut; a fast one gets every tick."""
    config = ServerConfig(port=0, max_queue=64 * 1024)
    async with ServerRunner(_app(), config) as runner:
        url = runner.ws_url + "/ws"
        fast = await RawClient.connect(url, unit)
        await fast.ok("subscribe", channel="px:B")
        # the slow one: a real client whose socket buffer is tiny and who stops reading
        slow = await stalled_client(url)
        await slow.recv()
        await slow.send(json.dumps({"op": "subscribe", "id": 1, "channel": "px:B"}))
        json.loads(await slow.recv())
        srv_conn = next(c for c in runner.server.connections if c.client_id != fast.client_id)
        n = 0
        payload = "x" * 2000
        got = []
        while srv_conn.conflated < 50:  # keep publishing until the server conflated plenty
            for _ in range(10):
                await runner.node.publish("px:B", {"n": n, "pad": payload})
                n += 1
            got += await fast.messages(10)  # the fast one keeps up with every round
            assert n < 20_000, "server never conflated"
        assert [m["data"]["n"] for m in got] == list(range(n))
        assert srv_conn.open  # conflated, not disconnected
        seen = []
        while not seen or seen[-1] != n - 1:
            frame = json.loads(await asyncio.wait_for(slow.recv(), unit))
            seen.append(frame["data"]["n"])
        assert seen == sorted(seen) and len(seen) < n
        await slow.close()
        await fast.close()


@pytest.mark.parametrize("policy_channel", ["drop:C"])
async def test_drop_oldest_keeps_connection_and_counts(unit, policy_channel):
    """drop_oldest drops queued messages of a stalled subscriber instead of cutting it off."""
    config = ServerConfig(port=0, max_queue=32 * 1024)
    async with ServerRunner(_app(), config) as runner:
        url = runner.ws_url + "/ws"
        slow = await stalled_client(url)
        await slow.recv()
        await slow.send(json.dumps({"op": "subscribe", "id": 1, "channel": policy_channel}))
        await slow.recv()
        conn = next(iter(runner.server.connections))
        n = 0
        while conn.dropped < 20:
            await runner.node.publish(policy_channel, {"n": n, "pad": "y" * 1000})
            n += 1
            if n % 20 == 0:
                await asyncio.sleep(0)
            assert n < 100_000, "server never dropped"
        assert conn.open
        seen = []
        while not seen or seen[-1] != n - 1:
            seen.append(json.loads(await asyncio.wait_for(slow.recv(), unit))["data"]["n"])
        assert seen == sorted(seen)
        await slow.close()

"""A healthy 3-node cluster behind nginx: clients spread over the nodes, and channels,
presence and the stock feed are shared through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import websockets

import wirehub
from tests.cluster.conftest import STOCKS_RATE, STOCKS_SEED, STOCKS_SYMBOLS, Cluster
from tests.rawclient import RawClient
from wirehub.apps.stocks import Simulator


async def http_get(url: str, unit: float) -> tuple[int, str, str]:
    """GET ``url`` on a fresh connection: status, content type, body."""

    def get() -> tuple[int, str, str]:
        with urllib.request.urlopen(url, timeout=unit) as response:
            return (response.status, response.headers.get("Content-Type", ""),
                    response.read().decode())

    return await asyncio.to_thread(get)


@pytest.fixture
async def raw_clients(cluster: Cluster, unit: float
                      ) -> AsyncIterator[Callable[[], Any]]:
    """Open RawClients through nginx, one after another; all closed afterwards."""
    opened: list[RawClient] = []

    async def connect() -> RawClient:
        client = await RawClient.connect(cluster.ws_url, unit)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        await client.close()


async def push_until(client: RawClient, pred: Callable[[dict[str, Any]], bool]
                     ) -> dict[str, Any]:
    """The next push matching ``pred`` (others are skipped)."""
    while True:
        frame = await client.push()
        if pred(frame):
            return frame


async def test_round_robin_spreads_clients_and_requests_over_every_node(
        cluster: Cluster, raw_clients: Callable[[], Any], unit: float) -> None:
    """Round robin: six clients land two per node, /healthz rotates, / works, /metrics is 403."""
    clients = [await raw_clients() for _ in range(6)]
    assert Counter(c.welcome["node"] for c in clients) == {name: 2 for name in cluster.names}
    health = [json.loads((await http_get(cluster.nginx.url + "/healthz", unit))[2])
              for _ in range(3)]
    assert {h["node"] for h in health} == set(cluster.names)
    assert all(h["status"] == "ok" and h["broker"]["healthy"] for h in health), health
    status, content_type, body = await http_get(cluster.nginx.url + "/", unit)
    assert status == 200 and content_type.startswith("text/html") and "<html" in body.lower()
    with pytest.raises(urllib.error.HTTPError) as denied:  # public on the nodes, not here
        await http_get(cluster.nginx.url + "/metrics", unit)
    assert denied.value.code == 403


async def test_browser_origin_is_checked_against_the_host_nginx_was_addressed_by(
        cluster: Cluster, unit: float) -> None:
    """Through nginx a page from nginx's own origin may connect; another origin gets 403."""
    async with websockets.connect(cluster.ws_url, open_timeout=unit,
                                  origin=cluster.nginx.url) as ws:  # type: ignore[arg-type]
        welcome = json.loads(await asyncio.wait_for(ws.recv(), unit))
        assert welcome["op"] == "welcome" and welcome["node"] in cluster.names
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(cluster.ws_url, open_timeout=unit,
                                 origin="http://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403


async def test_chat_messages_presence_joins_and_typing_cross_nodes(
        cluster: Cluster, raw_clients: Callable[[], Any]) -> None:
    """Ada on one node sees Bob (on another) join, chat, type and leave."""
    ada, bob = await raw_clients(), await raw_clients()
    assert ada.welcome["node"] != bob.welcome["node"]  # round robin
    room = "chat:across-nodes"
    await ada.ok("send", type="chat.nick", data={"nick": "ada"})
    await bob.ok("send", type="chat.nick", data={"nick": "bob"})
    await ada.ok("subscribe", channel=room)
    entry = {"channel": room, "user": None}
    assert await ada.push() == {"op": "join", "client": ada.client_id,
                                "info": {"nick": "ada"}, **entry}
    await bob.ok("subscribe", channel=room)
    assert await ada.push() == {"op": "join", "client": bob.client_id,
                                "info": {"nick": "bob"}, **entry}
    await bob.ok("publish", channel=room, data={"text": "hello from " + bob.welcome["node"]})
    message = await ada.push()
    assert message["op"] == "message" and message["from"] == bob.client_id
    assert message["data"] == {"text": "hello from " + bob.welcome["node"], "nick": "bob",
                               "user": None}
    await bob.ok("send", type="chat.typing", data={"room": "across-nodes"})
    assert await ada.push() == {"op": "event", "channel": room, "type": "typing",
                                "data": {"client": bob.client_id, "nick": "bob"}}
    await bob.close()
    assert await ada.push() == {"op": "leave", "client": bob.client_id,
                                "info": {"nick": "bob"}, **entry}


async def test_presence_lists_the_clients_of_every_node(
        cluster: Cluster, raw_clients: Callable[[], Any]) -> None:
    """Asked on any node, presence lists all six clients of the three nodes, then the five left."""
    room = "chat:presence-everywhere"
    clients = [await raw_clients() for _ in range(6)]
    assert {c.welcome["node"] for c in clients} == set(cluster.names)
    for n, client in enumerate(clients):
        await client.ok("send", type="chat.nick", data={"nick": f"user{n}"})
        await client.ok("subscribe", channel=room)
        # its own join comes back through Redis once its presence entry is written
        await push_until(client, lambda f, c=client: f["op"] == "join"
                         and f["client"] == c.client_id)
    everyone = {c.client_id: f"user{n}" for n, c in enumerate(clients)}
    for client in clients:
        listed = await client.ok("presence", channel=room)
        assert {e["client"]: e["info"]["nick"] for e in listed["clients"]} == everyone
        assert await client.ok("presence_stats", channel=room) == {"clients": 6, "users": 6}
    gone, watcher = clients[1], clients[0]
    assert gone.welcome["node"] != watcher.welcome["node"]
    await gone.close()
    await push_until(watcher, lambda f: f["op"] == "leave" and f["client"] == gone.client_id)
    del everyone[gone.client_id]
    for client in (c for c in clients if c is not gone):
        listed = await client.ok("presence", channel=room)
        assert {e["client"] for e in listed["clients"]} == set(everyone)


def expected_ticks(symbol: str, count: int) -> list[tuple[float, int]]:
    """(price, volume) of the first ``count`` ticks of ``symbol`` the nodes' seeded feed makes."""
    sim = Simulator(rate=STOCKS_RATE, seed=STOCKS_SEED, symbols=STOCKS_SYMBOLS)
    out: list[tuple[float, int]] = []
    while len(out) < count:
        out += [(t.price, t.volume) for t in sim.next_batch(1000, 0) if t.symbol == symbol]
    return out


async def test_stock_ticks_reach_every_node_from_one_feed(cluster: Cluster,
                                                          unit: float) -> None:
    """Clients on all three nodes get the one leader's ticks: every offset once, in order."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(wirehub.connect(
            cluster.ws_url, request_timeout=unit, open_timeout=unit)) for _ in range(3)]
        assert {c.node for c in clients} == set(cluster.names)
        subs = [await c.subscribe("stocks:AAPL") for c in clients]
        seen = [[await asyncio.wait_for(sub.get(), unit) for _ in range(15)] for sub in subs]
    top = max(m.offset for got in seen for m in got)
    expected = expected_ticks("AAPL", top)
    for client, got in zip(clients, seen, strict=True):
        offsets = [m.offset for m in got]
        assert offsets == list(range(offsets[0], offsets[0] + len(got))), (client.node, offsets)
        # with two feeds running, ticks would repeat or interleave: the offsets would
        # no longer match one seeded simulator's sequence
        assert [(m.data["price"], m.data["volume"]) for m in got] == \
            expected[offsets[0] - 1:offsets[-1]], client.node
        assert all(m.sender is None and m.data["symbol"] == "AAPL" for m in got)
    broker = aioredis.from_url(cluster.redis.url)
    try:
        leader = await broker.get("wh:lease:stocks-feed")
    finally:
        await broker.aclose()
    assert leader is not None and leader.decode() in cluster.names


async def test_snapshot_then_live_ticks_without_duplicates_under_a_fast_feed(
        make_cluster, unit: float) -> None:
    """180 subscribes to a 1500 ticks/s channel: snapshot then live ticks, each offset once."""
    cluster = make_cluster(3, "--stocks-rate", "3000")
    bad = []
    for _ in range(60):
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(wirehub.connect(
                cluster.ws_url, request_timeout=unit, open_timeout=unit)) for _ in range(3)]
            subs = [await c.subscribe("stocks:AAPL") for c in clients]
            seen = [[await asyncio.wait_for(sub.get(), unit) for _ in range(30)] for sub in subs]
        for client, got in zip(clients, seen, strict=True):
            offsets = [m.offset for m in got]
            if offsets != list(range(offsets[0], offsets[0] + len(got))):
                bad.append((client.node, offsets[:5]))
    assert bad == []

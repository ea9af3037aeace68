"""Presence lists, stats and join/leave pushes, over real sockets."""

from __future__ import annotations

import pytest

from tests.rawclient import RawClient
from wirehub import App
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


@pytest.fixture
async def runner():
    app = App("presence-test")
    app.namespace("room", presence=True)

    @app.on("whoami")
    async def whoami(conn, data):
        conn.info = {"nick": data}
        return {}

    async with ServerRunner(app, ServerConfig(port=0)) as r:
        yield r


async def test_join_leave_and_presence_list(runner, unit):
    """Subscribers see joins and leaves; presence lists who is there with their info."""
    url = runner.ws_url + "/ws"
    a = await RawClient.connect(url, unit)
    b = await RawClient.connect(url, unit)
    await a.ok("send", type="whoami", data="ada")
    await b.ok("send", type="whoami", data="bob")
    await a.ok("subscribe", channel="room:1")
    own = await a.push()
    assert own == {"op": "join", "channel": "room:1", "client": a.client_id, "user": None,
                   "info": {"nick": "ada"}}
    await b.ok("subscribe", channel="room:1")
    joined = await a.push()
    assert joined["op"] == "join" and joined["client"] == b.client_id
    assert joined["info"] == {"nick": "bob"}
    listed = await a.ok("presence", channel="room:1")
    assert sorted(e["client"] for e in listed["clients"]) == sorted([a.client_id, b.client_id])
    assert await a.ok("presence_stats", channel="room:1") == {"clients": 2, "users": 2}
    await b.ok("unsubscribe", channel="room:1")
    left = await a.push()
    assert left["op"] == "leave" and left["client"] == b.client_id
    await b.ok("subscribe", channel="room:1")
    assert (await a.push())["op"] == "join"
    await b.close()  # a disconnect is a leave too
    left = await a.push()
    assert left["op"] == "leave" and left["client"] == b.client_id
    listed = await a.ok("presence", channel="room:1")
    assert [e["client"] for e in listed["clients"]] == [a.client_id]
    await a.close()


async def test_presence_disabled_namespace_is_not_found(runner, unit):
    """presence on a namespace without presence is answered with not_found."""
    c = await RawClient.connect(runner.ws_url + "/ws", unit)
    err = await c.request("presence", channel="news")
    assert err["op"] == "error" and err["code"] == "not_found"
    await c.close()

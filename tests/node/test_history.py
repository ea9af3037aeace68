"""History, recovery with `since`, and snapshots, over real sockets."""

from __future__ import annotations

import pytest

from tests.rawclient import RawClient
from wirehub import App
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


def _app() -> App:
    app = App("history-test")
    app.namespace("short", history_size=10)
    app.namespace("snap", history_size=1, snapshot=True)
    return app


@pytest.fixture
async def runner():
    async with ServerRunner(_app(), ServerConfig(port=0)) as r:
        yield r


async def test_recovery_delivers_exactly_the_missed_messages(runner, unit):
    """A client away while 100 messages are published gets exactly those 100, in order."""
    url = runner.ws_url + "/ws"
    pub = await RawClient.connect(url, unit)
    sub = await RawClient.connect(url, unit)
    first = await sub.ok("subscribe", channel="room")
    await pub.ok("publish", channel="room", data="before")
    [seen] = await sub.messages(1)
    await sub.close()
    for n in range(100):
        await pub.ok("publish", channel="room", data=n)
    back = await RawClient.connect(url, unit)
    result = await back.ok("subscribe", channel="room",
                           since={"offset": seen["offset"], "epoch": first["epoch"]})
    assert result["recovered"] is True
    assert result["offset"] == seen["offset"] + 100
    msgs = await back.messages(100)
    assert [m["data"] for m in msgs] == list(range(100))
    assert [m["offset"] for m in msgs] == list(range(seen["offset"] + 1, seen["offset"] + 101))
    await pub.ok("publish", channel="room", data="live")
    [live] = await back.messages(1)
    assert live["data"] == "live" and live["offset"] == seen["offset"] + 101
    await pub.close()
    await back.close()


async def test_recovery_fails_when_window_exceeded(runner, unit):
    """Past the history window the answer is recovered: false, with nothing replayed."""
    url = runner.ws_url + "/ws"
    c = await RawClient.connect(url, unit)
    first = await c.ok("subscribe", channel="short:x")
    for n in range(15):  # history keeps 10
        await c.ok("publish", channel="short:x", data=n)
    await c.messages(15)
    await c.ok("unsubscribe", channel="short:x")
    result = await c.ok("subscribe", channel="short:x",
                        since={"offset": 2, "epoch": first["epoch"]})
    assert result["recovered"] is False
    await c.ok("publish", channel="short:x", data="next")
    [m] = await c.messages(1)
    assert m["data"] == "next"  # nothing old was replayed before it
    await c.close()


async def test_recovery_fails_on_other_epoch(runner, unit):
    """A `since` from another epoch (e.g. before a restart) is not recovered."""
    c = await RawClient.connect(runner.ws_url + "/ws", unit)
    await c.ok("publish", channel="news", data=1)
    result = await c.ok("subscribe", channel="news", since={"offset": 0, "epoch": "other"})
    assert result["recovered"] is False
    await c.close()


async def test_history_limit_and_since(runner, unit):
    """history returns the newest `limit` messages, or those after `since`, oldest first."""
    c = await RawClient.connect(runner.ws_url + "/ws", unit)
    for n in range(20):
        await c.ok("publish", channel="log", data=n)
    last5 = await c.ok("history", channel="log", limit=5)
    assert [m["data"] for m in last5["messages"]] == [15, 16, 17, 18, 19]
    assert last5["offset"] == 20
    after = await c.ok("history", channel="log", since={"offset": 17, "epoch": last5["epoch"]})
    assert [m["offset"] for m in after["messages"]] == [18, 19, 20]
    assert all(m["op"] == "message" and m["channel"] == "log" for m in after["messages"])
    bad = await c.request("history", channel="log", limit=-1)
    assert bad["op"] == "error" and bad["code"] == "bad_request" and "$.limit" in bad["message"]
    await c.close()


async def test_snapshot_gives_latest_message_at_once(runner, unit):
    """In a snapshot namespace a new subscriber gets the latest message right after the reply."""
    c = await RawClient.connect(runner.ws_url + "/ws", unit)
    for n in range(3):
        await c.ok("publish", channel="snap:AAPL", data={"price": n})
    await c.ok("subscribe", channel="snap:AAPL")
    [m] = await c.messages(1)
    assert m["data"] == {"price": 2} and m["offset"] == 3
    await c.close()

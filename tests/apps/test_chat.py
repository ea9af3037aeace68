"""The chat app over real sockets: validation, nicknames, history on join, typing."""

from __future__ import annotations

import pytest

from tests.rawclient import RawClient
from wirehub.apps.chat import MAX_TEXT, chat_app
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


@pytest.fixture
async def runner():
    async with ServerRunner(chat_app(), ServerConfig(port=0)) as r:
        yield r


async def test_messages_are_validated_and_stamped(runner, unit):
    """Empty, missing and over-long texts get bad_request; good ones carry the nickname."""
    c = await RawClient.connect(runner.ws_url + "/ws", unit)
    assert await c.ok("send", type="chat.nick", data={"nick": "ada"}) == {"nick": "ada"}
    await c.ok("subscribe", channel="chat:lobby")
    for data, needle in [({"text": "   "}, "empty"), ({"txt": "x"}, "data.text"),
                         ("hello", "data.text"), ({"text": "x" * (MAX_TEXT + 1)}, "2000")]:
        err = await c.request("publish", channel="chat:lobby", data=data)
        assert err["op"] == "error" and err["code"] == "bad_request", err
        assert needle in err["message"]
    await c.ok("publish", channel="chat:lobby", data={"text": "x" * MAX_TEXT})
    await c.ok("publish", channel="chat:lobby", data={"text": "<b>hi</b>"})
    msgs = await c.messages(2)
    assert msgs[1]["data"] == {"text": "<b>hi</b>", "nick": "ada", "user": None}
    await c.close()


async def test_join_shows_last_50_and_presence_has_nick(runner, unit):
    """A newcomer reads the last 50 messages and sees the others' nicknames in presence."""
    url = runner.ws_url + "/ws"
    a = await RawClient.connect(url, unit)
    await a.ok("send", type="chat.nick", data={"nick": "ada"})
    await a.ok("subscribe", channel="chat:r1")
    for n in range(60):
        await a.ok("publish", channel="chat:r1", data={"text": f"m{n}"})
    b = await RawClient.connect(url, unit)
    await b.ok("send", type="chat.nick", data={"nick": "bob"})
    await b.ok("subscribe", channel="chat:r1")
    hist = await b.ok("history", channel="chat:r1", limit=50)
    assert [m["data"]["text"] for m in hist["messages"]] == [f"m{n}" for n in range(10, 60)]
    people = await b.ok("presence", channel="chat:r1")
    assert sorted(e["info"]["nick"] for e in people["clients"]) == ["ada", "bob"]
    await a.close()
    await b.close()


async def test_typing_is_ephemeral_and_needs_membership(runner, unit):
    """chat.typing reaches the room's subscribers as an event and is not kept in history."""
    url = runner.ws_url + "/ws"
    a = await RawClient.connect(url, unit)
    b = await RawClient.connect(url, unit)
    await b.ok("send", type="chat.nick", data={"nick": "bob"})
    err = await b.request("send", type="chat.typing", data={"room": "r2"})
    assert err["code"] == "forbidden"
    await a.ok("subscribe", channel="chat:r2")
    await b.ok("subscribe", channel="chat:r2")
    await b.ok("send", type="chat.typing", data={"room": "r2"})
    while True:
        frame = await a.push()
        if frame["op"] == "event":
            break
    assert frame == {"op": "event", "channel": "chat:r2", "type": "typing",
                     "data": {"client": b.client_id, "nick": "bob"}}
    assert (await a.ok("history", channel="chat:r2"))["messages"] == []
    bad = await b.request("send", type="chat.nick", data={"nick": ""})
    assert bad["code"] == "bad_request" and "nick" in bad["message"]
    await a.close()
    await b.close()

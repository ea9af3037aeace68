"""Per-namespace permissions over real sockets: anyone, authenticated, owner, granted, server;
the token's channels claim; refusals that reveal nothing about the channel."""

from __future__ import annotations

from typing import Any

from tests.rawclient import RawClient
from wirehub.apps import default_app
from wirehub.transport.runner import ServerRunner

from .conftest import SECRET, Serve, connect, make_token

ACTIONS = {  # action -> (op, the permission's word in the refusal)
    "subscribe": ("subscribe", "subscribe"),
    "publish": ("publish", "publish"),
    "history": ("history", "history"),
    "presence": ("presence", "presence"),
    "presence_stats": ("presence_stats", "presence"),
}

#: who -> (sub, channels claim)
WHO = {
    "alice": ("alice", []),
    "bob": ("bob", []),
    "granted": ("gina", ["vip:gold", "locked:*", "user:alice", "lobby:*"]),
}

# channel -> who may do everything there (locked: nobody; feed: subscribe etc., never publish)
CASES: list[tuple[str, str, str, bool]] = []
for _action in ACTIONS:
    for _who in WHO:
        CASES += [
            ("news", _action, _who, True),  # no namespace: anyone
            ("members:x", _action, _who, True),  # authenticated
            ("user:alice", _action, _who, _who in ("alice", "granted")),  # owner, or the claim
            ("user:alice:inbox", _action, _who, _who == "alice"),  # owner's sub-channel
            ("user:bob", _action, _who, _who == "bob"),
            ("vip:gold", _action, _who, _who == "granted"),  # granted by the claim only
            ("vip:silver", _action, _who, False),  # the claim names vip:gold only
            ("locked:x", _action, _who, False),  # server: not even a matching claim
            ("feed:x", _action, _who, _action != "publish"),  # published by the server
        ]


async def attempt(c: RawClient, action: str, channel: str) -> dict[str, Any]:
    op, _ = ACTIONS[action]
    fields: dict[str, Any] = {"channel": channel}
    if op == "publish":
        fields["data"] = {"from": c.welcome.get("user")}
    return await c.request(op, **fields)


def refused(frame: dict[str, Any], action: str) -> bool:
    """Whether ``frame`` is the one forbidden answer (any other error fails the test)."""
    if frame["op"] == "error" and frame["code"] == "forbidden":
        assert frame["message"] == f"not allowed to {ACTIONS[action][1]} on this channel"
        return True
    # allowed; presence on a namespace without presence is not_found, after the check
    assert frame["op"] == "reply" or frame["code"] == "not_found", frame
    return False


async def test_permission_matrix(serve: Serve, unit: float) -> None:
    """Every rule x action x identity gets exactly the documented allow or `forbidden`."""
    runner = await serve(jwt_secret=SECRET)
    clients = {who: await connect(runner, unit, make_token(sub, channels=claim))
               for who, (sub, claim) in WHO.items()}
    wrong = []
    for channel, action, who, allowed in CASES:
        frame = await attempt(clients[who], action, channel)
        if refused(frame, action) == allowed:
            wrong.append((channel, action, who, frame))
    for c in clients.values():
        await c.close()
    assert wrong == []


async def test_anonymous_server_only_opens_anyone_namespaces(serve: Serve, unit: float) -> None:
    """Without auth every client is anonymous: authenticated/owner/granted/server all refuse."""
    runner = await serve()
    c = await connect(runner, unit)
    for action in ACTIONS:
        assert not refused(await attempt(c, action, "news"), action)
        for channel in ("members:x", "user:alice", "vip:gold", "locked:x"):
            assert refused(await attempt(c, action, channel), action), (action, channel)
    assert refused(await attempt(c, "publish", "feed:x"), "publish")
    await c.close()


async def test_refusal_does_not_reveal_whether_a_channel_exists(serve: Serve,
                                                                unit: float) -> None:
    """The refusal is the same for a channel with messages, subscribers, presence, or none."""
    runner = await serve(jwt_secret=SECRET)
    insider = await connect(runner, unit, make_token("gina", channels=["vip:*"]))
    await insider.ok("subscribe", channel="vip:gold")
    await insider.ok("publish", channel="vip:gold", data="secret")
    await runner.node.publish("vip:gold", "server secret")
    outsider = await connect(runner, unit, make_token("bob"))
    for action in ACTIONS:
        busy = await attempt(outsider, action, "vip:gold")
        empty = await attempt(outsider, action, "vip:never-used")
        busy.pop("id"), empty.pop("id")
        assert busy == empty == {"op": "error", "code": "forbidden",
                                 "message": f"not allowed to {ACTIONS[action][1]} on this channel"}
    await insider.close()
    await outsider.close()


async def test_stocks_channels_are_published_by_the_server_only(serve: Serve,
                                                               unit: float) -> None:
    """Default app: anyone subscribes to stocks:*, no client publishes there, claim or not."""
    runner = await serve(app=default_app(stocks_rate=5, stocks_seed=1), jwt_secret=SECRET)
    c = await connect(runner, unit, make_token("alice", channels=["stocks:*", "*"]))
    assert (await c.ok("subscribe", channel="stocks:AAPL"))["channel"] == "stocks:AAPL"
    frame = await c.request("publish", channel="stocks:AAPL", data={"price": 0.01})
    assert (frame["op"], frame["code"]) == ("error", "forbidden")
    assert frame["message"] == "not allowed to publish on this channel"
    await c.close()


async def test_claim_wildcards_grant_matching_channels_only(serve: Serve, unit: float) -> None:
    """`channels` patterns are fnmatch globs: vip:g* grants vip:gold, not vip:silver."""
    runner = await serve(jwt_secret=SECRET)
    c = await connect(runner, unit, make_token("gina", channels=["vip:g*"]))
    await c.ok("subscribe", channel="vip:gold")
    await c.ok("subscribe", channel="vip:green")
    assert (await c.request("subscribe", channel="vip:silver"))["code"] == "forbidden"
    await c.close()


async def test_refresh_with_new_claims_changes_permissions(serve: Serve, unit: float) -> None:
    """A refreshed token's channels claim applies to requests after the refresh."""
    runner = await serve(jwt_secret=SECRET)
    c = await connect(runner, unit, make_token("gina"))
    assert (await c.request("subscribe", channel="vip:gold"))["code"] == "forbidden"
    await c.ok("refresh", token=make_token("gina", channels=["vip:gold"]))
    await c.ok("subscribe", channel="vip:gold")
    await c.close()


# -- history and presence must not leak through subscribe -------------------------------------


async def _frames_before_pong(c: RawClient) -> list[dict[str, Any]]:
    """Everything pushed to ``c`` before the answer to a ping (pushes come in order)."""
    assert (await c.request("ping"))["op"] == "pong"
    out = []
    while not c.pushes.empty():
        out.append(c.pushes.get_nowait())
    return out


async def test_subscribe_since_does_not_bypass_history_permission(serve: Serve,
                                                                  unit: float) -> None:
    """A client refused `history` on lobby:* cannot read it by subscribing with `since`."""
    runner = await serve(jwt_secret=SECRET)
    for n in range(3):
        await runner.node.publish("lobby:a", {"secret": n})
    c = await connect(runner, unit, make_token("alice"))
    assert (await c.request("history", channel="lobby:a"))["code"] == "forbidden"
    epoch = (await c.ok("subscribe", channel="lobby:a"))["epoch"]
    await c.ok("unsubscribe", channel="lobby:a")
    await c.request("subscribe", channel="lobby:a", since={"offset": 0, "epoch": epoch})
    leaked = [f for f in await _frames_before_pong(c) if f["op"] == "message"]
    await c.close()
    assert leaked == [], "history replayed to a client without the history permission"


async def test_subscribe_does_not_bypass_presence_permission(serve: Serve, unit: float) -> None:
    """A subscriber refused `presence` on lobby:* gets no join pushes naming others."""
    runner: ServerRunner = await serve(jwt_secret=SECRET)
    watcher = await connect(runner, unit, make_token("alice"))
    assert (await watcher.request("presence", channel="lobby:a"))["code"] == "forbidden"
    await watcher.ok("subscribe", channel="lobby:a")
    await _frames_before_pong(watcher)  # drain the watcher's own join
    other = await connect(runner, unit, make_token("bob"))
    await other.ok("subscribe", channel="lobby:a")
    await other.request("ping")  # bob's subscribe, join push included, is done
    pushes = await _frames_before_pong(watcher)
    await other.close()
    await watcher.close()
    leaked = [f for f in pushes if f["op"] in ("join", "leave") and f.get("user") == "bob"]
    assert leaked == [], f"presence of bob pushed to a client without presence rights: {leaked}"

"""JWT authentication over real sockets: the handshake header, the connect frame, ?token=,
refresh and expiry, RS256/ES256 public keys, and what never reaches a log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wirehub.core.codes import CloseCode
from wirehub.logs import JsonFormatter, TextFormatter

from .conftest import SECRET, Serve, bearer, close_code, connect, make_token, refused_status
from .wire import RawWS, text

CONNECT_HINT = "authenticate first"


# -- anonymous servers ------------------------------------------------------------------------


async def test_anonymous_server_has_no_auth_in_welcome(serve: Serve, unit: float) -> None:
    """Without a key the server is anonymous: no `auth` in the welcome, `connect` is refused."""
    runner = await serve()
    c = await connect(runner, unit)
    assert "auth" not in c.welcome and "user" not in c.welcome
    assert (await c.ok("subscribe", channel="news"))["offset"] == 0
    frame = await c.request("connect", token=make_token())
    assert (frame["op"], frame["code"]) == ("error", "bad_request")
    assert await c.request("ping") == {"op": "pong", "id": 3}
    await c.close()


# -- the Authorization header -----------------------------------------------------------------


async def test_valid_header_token_authenticates(serve: Serve, unit: float) -> None:
    """A valid Bearer token at the handshake: welcome says authenticated as its sub."""
    runner = await serve(jwt_secret=SECRET)
    c = await connect(runner, unit, make_token("alice"))
    assert c.welcome["auth"] == "authenticated"
    assert c.welcome["user"] == "alice"
    await c.ok("subscribe", channel="members:x")
    await c.close()


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [({"aud": "wirehub", "iss": "https://auth.test"}, True),
     ({"aud": ["other", "wirehub"], "iss": "https://auth.test"}, True),
     ({"aud": "other", "iss": "https://auth.test"}, False),
     ({"iss": "https://auth.test"}, False),  # no aud
     ({"aud": "wirehub", "iss": "https://evil.test"}, False),
     ({"aud": "wirehub"}, False)],  # no iss
    ids=["both", "aud-list", "wrong-aud", "no-aud", "wrong-iss", "no-iss"],
)
async def test_audience_and_issuer_are_checked_when_set(serve: Serve, unit: float,
                                                         claims: dict[str, Any],
                                                         accepted: bool) -> None:
    """jwt_audience and jwt_issuer: a token must carry both, or the handshake gets 401."""
    runner = await serve(jwt_secret=SECRET, jwt_audience="wirehub", jwt_issuer="https://auth.test")
    token = make_token("alice", **claims)
    if accepted:
        c = await connect(runner, unit, token)
        assert c.welcome["user"] == "alice"
        await c.close()
    else:
        assert await refused_status(runner.ws_url + "/ws", unit,
                                    additional_headers=bearer(token)) == 401


async def test_audience_not_checked_by_default(serve: Serve, unit: float) -> None:
    """Without jwt_audience a token's aud claim, whatever it says, does not matter."""
    runner = await serve(jwt_secret=SECRET)
    c = await connect(runner, unit, make_token("alice", aud="another-service"))
    assert c.welcome["auth"] == "authenticated"
    await c.close()


def _forged_hs256(payload: dict[str, Any], key: bytes) -> str:
    """An HS256 token signed with ``key`` by hand (PyJWT refuses PEM keys as HMAC secrets)."""
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(payload).encode())
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(sig)


BAD_HEADERS = {
    "expired": bearer(make_token(ttl=-10)),
    "wrong secret": bearer(make_token(key="another-secret-" + "x" * 50)),
    "garbage": bearer("not-a-jwt"),
    "three dots": bearer("a.b.c"),
    "no sub": bearer(make_token(sub=None)),
    "sub not a string": bearer(make_token(sub=42)),
    "empty sub": bearer(make_token(sub="")),
    "no exp": bearer(jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")),
    "not yet valid": bearer(make_token(nbf=int(time.time()) + 3600)),
    "channels not a list": bearer(make_token(channels="vip:*")),
    "alg none": bearer(jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None,
                                  algorithm="none")),
    "alg HS512": bearer(make_token(alg="HS512")),
    "basic scheme": {"Authorization": "Basic YWxpY2U6cHc="},
    "empty bearer": {"Authorization": "Bearer "},
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
async def test_bad_header_token_is_refused_with_401(serve: Serve, unit: float, case: str) -> None:
    """An invalid, expired or malformed Authorization header gets HTTP 401 before the upgrade."""
    runner = await serve(jwt_secret=SECRET)
    try:
        await websockets.connect(runner.ws_url + "/ws", additional_headers=BAD_HEADERS[case],
                                 open_timeout=unit, ping_interval=None)
    except websockets.InvalidStatus as exc:
        assert exc.response.status_code == 401
        assert exc.response.headers["WWW-Authenticate"].startswith("Bearer")
        token = BAD_HEADERS[case]["Authorization"].partition(" ")[2]
        assert not token or token.encode() not in exc.response.body
    else:
        pytest.fail(f"{case}: handshake accepted")
    assert runner.server.connections == set()


async def test_oversized_authorization_header_is_400(serve: Serve, unit: float) -> None:
    """A header over the 8 KiB field limit is refused; the server goes on.

    aiohttp answers 400 in HTTP/1.0 (the client calls that an invalid message);
    the lean transport (websockets' parser) answers 431.
    """
    runner = await serve(jwt_secret=SECRET)
    with pytest.raises((websockets.InvalidMessage, websockets.InvalidStatus)) as refused:
        await websockets.connect(runner.ws_url + "/ws", additional_headers=bearer("x" * 9000),
                                 open_timeout=unit, ping_interval=None)
    if isinstance(refused.value, websockets.InvalidStatus):
        assert refused.value.response.status_code == 431
    c = await connect(runner, unit, make_token())
    assert c.welcome["auth"] == "authenticated"
    await c.close()


# -- the connect frame --------------------------------------------------------------------------


async def test_without_token_only_connect_and_ping_are_allowed(serve: Serve, unit: float) -> None:
    """No header: welcome says auth required; every op but ping is `unauthorized` until connect."""
    runner = await serve(jwt_secret=SECRET)
    c = await connect(runner, unit)
    assert c.welcome["auth"] == "required" and c.welcome.get("user") is None
    refused = {
        "subscribe": {"channel": "news"}, "unsubscribe": {"channel": "news"},
        "publish": {"channel": "news", "data": 1}, "send": {"type": "echo", "data": 1},
        "history": {"channel": "news"}, "presence": {"channel": "lobby:a"},
        "presence_stats": {"channel": "lobby:a"}, "refresh": {"token": make_token()},
    }
    for op, fields in refused.items():
        frame = await c.request(op, **fields)
        assert (frame["op"], frame["code"]) == ("error", "unauthorized"), (op, frame)
        assert CONNECT_HINT in frame["message"]
    assert (await c.request("ping"))["op"] == "pong"
    result = await c.ok("connect", token=make_token("bob", ttl=600))
    assert result["user"] == "bob"
    assert result["expires"] > time.time()
    assert await c.ok("send", type="echo", data="hi") == "hi"
    await c.ok("subscribe", channel="members:x")
    await c.close()


@pytest.mark.parametrize("token", [make_token(ttl=-5), "garbage", make_token(key="k" * 64),
                                   make_token(sub=None)], ids=["expired", "garbage", "key", "sub"])
async def test_bad_connect_token_is_unauthorized_then_4500(serve: Serve, unit: float,
                                                           token: str) -> None:
    """A connect frame with a bad token: an `unauthorized` error, then close 4500 (final)."""
    runner = await serve(jwt_secret=SECRET)
    c = await connect(runner, unit)
    frame = await c.request("connect", token=token)
    assert (frame["op"], frame["code"]) == ("error", "unauthorized")
    assert await close_code(c, unit) == CloseCode.UNAUTHORIZED


async def test_connect_twice_is_bad_request(serve: Serve, unit: float) -> None:
    """A second connect on an authenticated connection is refused; the connection goes on."""
    runner = await serve(jwt_secret=SECRET)
    c = await connect(runner, unit, make_token("alice"))
    frame = await c.request("connect", token=make_token("mallory"))
    assert (frame["op"], frame["code"]) == ("error", "bad_request")
    assert c.welcome["user"] == "alice"
    assert (await c.request("ping"))["op"] == "pong"
    await c.close()


async def test_connect_timeout_closes_4500(serve: Serve, unit: float) -> None:
    """No connect frame within connect_timeout: `unauthorized` error, close 4500; others stay."""
    runner = await serve(jwt_secret=SECRET, connect_timeout=0.3, ping_interval=0)
    early = await connect(runner, unit)  # connects first, authenticates in time
    await early.ok("connect", token=make_token("alice"))
    late = await connect(runner, unit)
    assert (await late.request("ping"))["op"] == "pong"  # pings do not count as authenticating
    error = await late.push()
    assert (error["op"], error["code"]) == ("error", "unauthorized")
    assert "connect frame" in error["message"]
    assert await close_code(late, unit) == CloseCode.UNAUTHORIZED
    # the check that closed `late` saw `early` too (it connected earlier): still open
    assert (await early.request("ping"))["op"] == "pong"
    await early.close()


# -- ?token= --------------------------------------------------------------------------------


async def test_query_token_is_ignored_unless_allowed(serve: Serve, unit: float) -> None:
    """By default ?token= is not read (tokens in URLs reach logs): the client must connect."""
    runner = await serve(jwt_secret=SECRET)
    c = await connect(runner, unit, path=f"/ws?token={make_token()}")
    assert c.welcome["auth"] == "required"
    await c.close()


async def test_query_token_with_allow_query_token(serve: Serve, unit: float) -> None:
    """With allow_query_token a valid ?token= authenticates and an invalid one gets 401."""
    runner = await serve(jwt_secret=SECRET, allow_query_token=True)
    c = await connect(runner, unit, path=f"/ws?token={make_token('carol')}")
    assert (c.welcome["auth"], c.welcome["user"]) == ("authenticated", "carol")
    await c.close()
    status = await refused_status(runner.ws_url + f"/ws?token={make_token(ttl=-5)}", unit)
    assert status == 401
    # a header wins over the query string
    c = await connect(runner, unit, make_token("dave"), path="/ws?token=garbage")
    assert c.welcome["user"] == "dave"
    await c.close()


# -- refresh and expiry ------------------------------------------------------------------------


async def test_refresh_keeps_a_connection_past_expiry_and_unrefreshed_closes_4501(
        serve: Serve, unit: float) -> None:
    """Before expiry the server asks for a token; refreshed lives on, unrefreshed closes 4501."""
    runner = await serve(jwt_secret=SECRET, ping_interval=0)
    old = make_token("alice", ttl=2)  # 1-2 s left: within refresh_ahead (30 s) at once
    keeper = await connect(runner, unit, old)
    idler = await connect(runner, unit, old)
    for c in (keeper, idler):
        ask = await c.push()
        assert ask["op"] == "refresh"
        assert 0 < ask["expires_in"] <= 30
    new = make_token("alice", ttl=600)
    result = await keeper.ok("refresh", token=new)
    assert result["user"] == "alice"
    assert result["expires"] == jwt.decode(new, SECRET, algorithms=["HS256"])["exp"]
    assert await close_code(idler, unit) == CloseCode.TOKEN_EXPIRED
    # the check that expired `idler` saw `keeper` (same old expiry): refreshed, still open
    assert (await keeper.request("ping"))["op"] == "pong"
    await keeper.ok("subscribe", channel="members:x")
    await keeper.close()


async def test_connect_frame_token_also_expires_4501(serve: Serve, unit: float) -> None:
    """A token given in a connect frame expires like a header token: close 4501."""
    runner = await serve(jwt_secret=SECRET, ping_interval=0)
    c = await connect(runner, unit)
    await c.ok("connect", token=make_token("alice", ttl=2))
    assert (await c.push())["op"] == "refresh"
    assert await close_code(c, unit) == CloseCode.TOKEN_EXPIRED


@pytest.mark.parametrize("token", [make_token("mallory"), make_token("alice", ttl=-5), "bad"],
                         ids=["other-user", "expired", "garbage"])
async def test_bad_refresh_is_unauthorized_then_4500(serve: Serve, unit: float,
                                                     token: str) -> None:
    """A refresh with another user's, an expired or an invalid token: unauthorized, close 4500."""
    runner = await serve(jwt_secret=SECRET)
    c = await connect(runner, unit, make_token("alice"))
    frame = await c.request("refresh", token=token)
    assert (frame["op"], frame["code"]) == ("error", "unauthorized")
    assert await close_code(c, unit) == CloseCode.UNAUTHORIZED


# -- public keys ---------------------------------------------------------------------------------


def _keypair(kind: str) -> tuple[Any, str]:
    key: Any = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa"
                else ec.generate_private_key(ec.SECP256R1()))
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, pem.decode()


@pytest.mark.parametrize(("kind", "alg"), [("rsa", "RS256"), ("ec", "ES256")])
async def test_public_key_tokens(serve: Serve, unit: float, tmp_path: Path, kind: str,
                                 alg: str) -> None:
    """With jwt_public_key, tokens signed by the matching private key authenticate."""
    key, pem = _keypair(kind)
    path = tmp_path / "pub.pem"
    path.write_text(pem)
    runner = await serve(jwt_public_key=str(path))
    c = await connect(runner, unit, make_token("dave", key=key, alg=alg))
    assert (c.welcome["auth"], c.welcome["user"]) == ("authenticated", "dave")
    await c.close()
    other, _ = _keypair(kind)
    assert await refused_status(runner.ws_url + "/ws", unit, additional_headers=bearer(
        make_token("dave", key=other, alg=alg))) == 401


async def test_public_key_server_refuses_forged_and_mismatched_tokens(
        serve: Serve, unit: float, tmp_path: Path) -> None:
    """An RS256 server answers 401 to HS256 signed with its public key and to ES256 tokens."""
    _, pem = _keypair("rsa")
    path = tmp_path / "pub.pem"
    path.write_text(pem)
    runner = await serve(jwt_public_key=str(path))
    forged = _forged_hs256({"sub": "root", "exp": int(time.time()) + 60}, pem.encode())
    ec_key, _ = _keypair("ec")
    for token in (forged, make_token("root", key=ec_key, alg="ES256")):
        status = await refused_status(runner.ws_url + "/ws", unit,
                                      additional_headers=bearer(token))
        assert status == 401, token
    c = await connect(runner, unit)  # and the same through a connect frame
    frame = await c.request("connect", token=make_token("root", key=ec_key, alg="ES256"))
    assert (frame["op"], frame["code"]) == ("error", "unauthorized"), frame
    assert await close_code(c, unit) == CloseCode.UNAUTHORIZED


# -- logs ---------------------------------------------------------------------------------------


async def test_tokens_never_reach_the_log(serve: Serve, unit: float,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """No token (header, query, connect, refresh; good or bad) survives wirehub's log
    formatters, even at debug level where frames are logged."""
    caplog.set_level(logging.DEBUG)
    runner = await serve(jwt_secret=SECRET, allow_query_token=True)
    tokens = [make_token("alice"), make_token("bob"), make_token(ttl=-5),
              make_token("carol"), make_token("mallory"), make_token(key="z" * 64)]
    good_header, good_query, expired, good_connect, other_user, wrong_key = tokens
    c = await connect(runner, unit, good_header)
    await c.ok("refresh", token=good_header)
    await c.close()
    c = await connect(runner, unit, path=f"/ws?token={good_query}")
    await c.close()
    for bad in (expired, wrong_key):
        await refused_status(runner.ws_url + "/ws", unit, additional_headers=bearer(bad))
    c = await connect(runner, unit)
    await c.ok("connect", token=good_connect)
    await c.request("refresh", token=other_user)
    await close_code(c, unit)
    c = await connect(runner, unit)
    await c.request("connect", token=wrong_key)
    await close_code(c, unit)
    # the server's loggers only (the test's own websockets client logs its headers)
    records = [r for r in caplog.records if r.name.startswith(("wirehub", "aiohttp"))]
    assert any("authentication failed" in r.getMessage() for r in records)  # failures logged
    for formatter in (TextFormatter(), JsonFormatter()):
        text = "\n".join(formatter.format(r) for r in records)
        for token in tokens:
            assert token not in text
            assert token.rsplit(".", 1)[-1][:16] not in text  # not even part of the signature


# -- nothing is done for a client once its credentials are gone ---------------------------------


async def test_requests_after_a_failed_refresh_are_not_served(serve: Serve, unit: float) -> None:
    """Requests that follow a refused refresh (pipelined) are not carried out."""
    runner = await serve(jwt_secret=SECRET)
    watcher = await connect(runner, unit, make_token("walt"))
    await watcher.ok("subscribe", channel="members:x")
    raw = await RawWS.open(runner.port, unit, headers=bearer(make_token("alice")))
    raw.send(text(json.dumps({"op": "refresh", "id": 1, "token": make_token("mallory")}))
             + b"".join(text(json.dumps({"op": "publish", "id": i, "channel": "members:x",
                                         "data": i})) for i in range(2, 5)))
    frames, code = await raw.data_until_close()
    raw.abort()
    assert code == CloseCode.UNAUTHORIZED
    assert frames[0]["code"] == "unauthorized"
    await watcher.ok("publish", channel="members:x", data="marker")
    seen = [m["data"] for m in await watcher.messages(1)]
    await watcher.close()
    assert seen == ["marker"], f"published after the refresh was refused: {seen}"


async def test_no_request_is_served_after_the_token_expires(serve: Serve, unit: float) -> None:
    """A client that keeps publishing past its token's `exp` (and never answers the close)
    has nothing published after `exp`."""
    runner = await serve(jwt_secret=SECRET)  # heartbeat tick: 1 s
    watcher = await connect(runner, unit, make_token("walt"))
    await watcher.ok("subscribe", channel="members:x")
    token = make_token("alice", ttl=2)
    exp_ms = jwt.decode(token, SECRET, algorithms=["HS256"])["exp"] * 1000
    raw = await RawWS.open(runner.port, unit, headers=bearer(token))

    async def keep_publishing() -> None:
        n = 0
        while not raw.eof:
            n += 1
            raw.send(text(json.dumps({"op": "publish", "channel": "members:x", "data": n})))
            await asyncio.sleep(0.01)  # pacing the attacker, not waiting for an event

    publisher = asyncio.ensure_future(keep_publishing())
    try:
        assert await raw.close_code() == CloseCode.TOKEN_EXPIRED
    finally:
        publisher.cancel()
        raw.abort()
    await watcher.ok("publish", channel="members:x", data="marker")
    late = []
    while (m := (await watcher.messages(1))[0])["data"] != "marker":
        if m["ts"] >= exp_ms:  # a JWT is expired from `exp` on
            late.append(m["data"])
    await watcher.close()
    assert late == [], f"{len(late)} messages published after the token expired"

"""The HTTP API for other services: key, publish, channels, presence, history, OpenAPI."""

from __future__ import annotations

import aiohttp
import pytest

from tests.rawclient import RawClient
from wirehub import App
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner

KEY = "test-api-key-123"


@pytest.fixture
async def runner():
    app = App("api-test")
    app.namespace("room", presence=True)
    async with ServerRunner(app, ServerConfig(port=0, api_key=KEY)) as r:
        yield r


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        yield s


async def test_publish_reaches_websocket_subscribers(runner, http, unit):
    """POST /api/publish delivers to subscribers with from=null and returns the offset."""
    c = await RawClient.connect(runner.ws_url + "/ws", unit)
    await c.ok("subscribe", channel="news")
    async with http.post(runner.url + "/api/publish",
                         json={"channel": "news", "data": {"t": 1}}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["channel"] == "news" and body["offset"] == 1
    [m] = await c.messages(1)
    assert m["data"] == {"t": 1} and m["from"] is None and m["offset"] == 1
    async with http.get(runner.url + "/api/channels") as resp:
        assert (await resp.json())["channels"] == [{"channel": "news", "subscribers": 1}]
    async with http.get(runner.url + "/api/history/news?limit=5") as resp:
        hist = await resp.json()
    assert [m["data"] for m in hist["messages"]] == [{"t": 1}] and hist["offset"] == 1
    await c.close()


async def test_presence_and_errors_are_json(runner, http, unit):
    """Presence lists clients; bad input and unknown presence get JSON errors with codes."""
    c = await RawClient.connect(runner.ws_url + "/ws", unit)
    await c.ok("subscribe", channel="room:1")
    async with http.get(runner.url + "/api/presence/room:1") as resp:
        assert [e["client"] for e in (await resp.json())["clients"]] == [c.client_id]
    for method, path, body, status, code in [
        ("post", "/api/publish", {"channel": "bad channel"}, 400, "bad_request"),
        ("post", "/api/publish", {"chan": "x"}, 400, "bad_request"),
        ("get", "/api/presence/news", None, 404, "not_found"),
        ("get", "/api/history/news?limit=x", None, 400, "bad_request"),
    ]:
        async with http.request(method, runner.url + path, json=body) as resp:
            assert resp.status == status, path
            err = await resp.json()
            assert err["code"] == code and err["message"]
    await c.close()


async def test_key_is_required(runner, unit):
    """Without the right key every API route answers 401; the OpenAPI document is public."""
    async with aiohttp.ClientSession() as anon:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            async with anon.post(runner.url + "/api/publish", headers=headers,
                                 json={"channel": "x", "data": 1}) as resp:
                assert resp.status == 401
                assert (await resp.json())["code"] == "unauthorized"
        async with anon.get(runner.url + "/api/openapi.json") as resp:
            doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/api/publish", "/api/channels", "/api/presence/{channel}",
                                 "/api/history/{channel}"}


async def test_api_is_off_without_a_key(unit):
    """No api_key configured: /api/* does not exist."""
    async with ServerRunner(App("x"), ServerConfig(port=0)) as runner, \
            aiohttp.ClientSession() as s, s.get(runner.url + "/api/channels") as resp:
        assert resp.status == 404

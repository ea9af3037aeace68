"""The Python client with authentication: token on connect, refresh before expiry."""

from __future__ import annotations

import asyncio
import time

import jwt

import wirehub
from wirehub import App
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner

SECRET = "client-test-secret-0123456789abcdef"


def token(sub: str, ttl: float) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time() + ttl)}, SECRET, algorithm="HS256")


async def test_token_callback_refreshes_without_reconnecting(unit):
    """A short-lived token is refreshed through the callback; the connection stays up."""
    config = ServerConfig(port=0, jwt_secret=SECRET, refresh_ahead=2.5, ping_interval=0.2,
                          ping_timeout=5)
    issued: list[str] = []
    refreshed = asyncio.Event()

    def provider() -> str:
        issued.append(token("ada", 3))
        if len(issued) > 1:
            refreshed.set()
        return issued[-1]

    async with ServerRunner(App("auth-client"), config) as runner:
        async with wirehub.connect(runner.ws_url + "/ws", token=provider) as client:
            [conn] = runner.server.connections
            assert conn.user == "ada"
            first_id = client.client_id
            await asyncio.wait_for(refreshed.wait(), unit)  # the server asked, we answered
            for _ in range(100):  # the refresh reply lands on the server
                if conn.identity is not None and conn.identity.expires_at > \
                        time.time() + 2.6:
                    break
                await client.ping()
            assert client.client_id == first_id and client.reconnects == 0
            assert await client.ping() >= 0


async def test_static_token_in_header(unit):
    """A plain token string authenticates the handshake; a bad one is refused (final)."""
    async with ServerRunner(App("auth-client"),
                            ServerConfig(port=0, jwt_secret=SECRET)) as runner:
        async with wirehub.connect(runner.ws_url + "/ws", token=token("bob", 60)) as client:
            sub = await client.subscribe("news")
            await client.publish("news", 1)
            assert (await asyncio.wait_for(sub.get(), unit)).data == 1
            [conn] = runner.server.connections
            assert conn.user == "bob"
        try:
            async with wirehub.connect(runner.ws_url + "/ws", token="not-a-jwt"):
                raise AssertionError("a bad token was accepted")
        except wirehub.HandshakeError as exc:
            assert exc.status == 401

"""Fixtures for the security suite: tokens, an app with one namespace per permission rule,
in-process servers with any ServerConfig, and `wirehub serve` subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import websockets

from tests.rawclient import RawClient
from wirehub import App
from wirehub.apps import echo_app
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner

ROOT = Path(__file__).resolve().parents[2]
#: HS256 secret for the suite (64 bytes: PyJWT warns on shorter HMAC keys)
SECRET = "wirehub-security-suite-" + "k" * 41


def make_token(sub: Any = "alice", *, ttl: float = 3600, key: Any = SECRET,
               alg: str = "HS256", **claims: Any) -> str:
    """A signed JWT for ``sub`` expiring in ``ttl`` seconds (whole seconds, as issuers do)."""
    payload: dict[str, Any] = {"exp": int(time.time() + ttl), **claims}
    if sub is not None:
        payload["sub"] = sub
    return jwt.encode(payload, key, algorithm=alg)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_app() -> App:
    """Echo plus one namespace per permission rule (see docs/security.md)."""
    app = App("security").include(echo_app())
    app.namespace("members", subscribe="authenticated", publish="authenticated",
                  history="authenticated", presence_read="authenticated", presence=True)
    app.namespace("user", subscribe="owner", publish="owner", history="owner",
                  presence_read="owner", presence=True)
    app.namespace("vip", subscribe="granted", publish="granted", history="granted",
                  presence_read="granted", presence=True)
    app.namespace("feed", publish="server")
    app.namespace("locked", subscribe="server", publish="server", history="server",
                  presence_read="server", presence=True)
    # subscribing and publishing are open; history and presence only with a grant
    app.namespace("lobby", history="granted", presence_read="granted", presence=True)
    return app


Serve = Callable[..., Awaitable[ServerRunner]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start in-process servers: ``await serve(app=None, **ServerConfig fields)``."""
    async with contextlib.AsyncExitStack() as stack:
        async def start(app: App | None = None, **settings: Any) -> ServerRunner:
            settings.setdefault("drain_period", 0.0)  # close leftovers at once on teardown
            config = ServerConfig(port=0, **settings)
            return await stack.enter_async_context(ServerRunner(app or make_app(), config))

        yield start


async def connect(runner: ServerRunner, unit: float, token: str | None = None,
                  path: str = "/ws", **kwargs: Any) -> RawClient:
    """A RawClient on ``runner`` (with ``Authorization: Bearer token`` if given)."""
    if token is not None:
        kwargs["additional_headers"] = bearer(token)
    kwargs.setdefault("ping_interval", None)
    return await RawClient.connect(runner.ws_url + path, unit, open_timeout=unit, **kwargs)


async def refused_status(url: str, unit: float, **kwargs: Any) -> int:
    """The HTTP status that refuses a WebSocket handshake (fails if the handshake succeeds)."""
    try:
        ws = await websockets.connect(url, open_timeout=unit, ping_interval=None, **kwargs)
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    raise AssertionError(f"handshake to {url} was accepted")


async def close_code(client: RawClient, unit: float) -> int | None:
    """Wait until the server closes ``client``; the close code it sent."""
    async with asyncio.timeout(unit):
        await client.ws.wait_closed()
    rcvd = client.ws.protocol.close_rcvd
    return rcvd.code if rcvd is not None else None


async def eventually(predicate: Callable[[], bool], unit: float) -> None:
    """Wait for a server-side condition no event announces (polled, bounded by ``unit``)."""
    async with asyncio.timeout(unit):
        while not predicate():
            await asyncio.sleep(0.01)


# -- `wirehub serve` subprocesses ---------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """This environment without WIREHUB_* settings (they would leak into the server)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("WIREHUB_") or k == "WIREHUB_TEST_TIMEOUT_SCALE"}


@dataclass
class Spawned:
    proc: asyncio.subprocess.Process
    url: str
    lines: list[str] = field(default_factory=list)
    _seen: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def wait_for_line(self, pattern: str, timeout: float) -> str:
        """The first output line matching ``pattern`` (awaits it)."""
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if re.search(pattern, line):
                        return line
                if self.proc.returncode is not None and self.proc.stdout.at_eof():
                    raise AssertionError(f"no {pattern!r} in output:\n{''.join(self.lines)}")
                self._seen.clear()
                await self._seen.wait()


Spawn = Callable[..., Awaitable[Spawned]]


@pytest.fixture
async def spawn(unit: float) -> AsyncIterator[Spawn]:
    """Run ``wirehub serve --host 127.0.0.1 --port 0 ARGS`` (http or https); killed by PID after."""
    started: list[tuple[Spawned, asyncio.Task[None]]] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> Spawned:
        cmd = [sys.executable, "-m", "wirehub", "serve", "--host", "127.0.0.1", "--port", "0",
               *args]
        full_env = _clean_env()
        full_env.update(env or {})
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=ROOT, env=full_env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        spawned = Spawned(proc, "")

        async def pump() -> None:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                spawned.lines.append(raw.decode(errors="replace"))
                spawned._seen.set()
            spawned._seen.set()

        task = asyncio.ensure_future(pump())
        started.append((spawned, task))
        line = await spawned.wait_for_line(r"wirehub listening on https?://", unit * 3)
        spawned.url = re.search(r"(https?://127\.0\.0\.1:\d+)", line).group(1)  # type: ignore[union-attr]
        return spawned

    yield start
    for spawned, task in started:
        if spawned.proc.returncode is None:
            spawned.proc.kill()
        await spawned.proc.wait()
        task.cancel()


async def run_serve(*args: str, timeout: float, env: dict[str, str] | None = None,
                    ) -> tuple[int, str]:
    """Run ``wirehub serve ARGS`` expecting it to exit by itself; (exit code, output)."""
    full_env = _clean_env()
    full_env.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wirehub", "serve", "--host", "127.0.0.1", "--port", "0", *args,
        cwd=ROOT, env=full_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(errors="replace")


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))

"""Shared fixtures: real servers on 127.0.0.1 with port 0, scalable timeouts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from wirehub.apps import default_app
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner

ROOT = Path(__file__).resolve().parent.parent
#: WIREHUB_TEST_TRANSPORT=aiohttp (or lean) runs every in-process server on that transport
#: (subprocess servers read WIREHUB_TRANSPORT, set from it below)
TRANSPORT = os.environ.get("WIREHUB_TEST_TRANSPORT", "")
if TRANSPORT:
    os.environ["WIREHUB_TRANSPORT"] = TRANSPORT
    _init = ServerRunner.__init__

    def _init_with_transport(self: ServerRunner, app: object, config: ServerConfig | None = None,
                             ) -> None:
        config = config or ServerConfig()
        _init(self, app, replace(config, transport=TRANSPORT))  # type: ignore[arg-type]

    ServerRunner.__init__ = _init_with_transport  # type: ignore[method-assign]
#: one unit of waiting; every timeout in the suite is a multiple of it
UNIT = float(os.environ.get("WIREHUB_TEST_TIMEOUT_SCALE", "1")) * 5.0


@pytest.fixture
def unit() -> float:
    """Seconds in one timeout unit (WIREHUB_TEST_TIMEOUT_SCALE scales it)."""
    return UNIT


@pytest.fixture
async def server() -> AsyncIterator[ServerRunner]:
    """The default app served in-process on 127.0.0.1, port 0."""
    async with ServerRunner(default_app(), ServerConfig(port=0)) as runner:
        yield runner


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    port: int
    lines: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = UNIT * 2) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


def start_server_process(*args: str, port: int = 0, cwd: Path = ROOT) -> ServerProcess:
    """Run ``wirehub serve`` as a subprocess; wait for its 'listening' line."""
    cmd = [sys.executable, "-m", "wirehub", "serve", "--host", "127.0.0.1",
           "--port", str(port), *args]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks until the server prints or exits
        lines.append(line)
        match = re.search(r"wirehub listening on http://127\.0\.0\.1:(\d+)", line)
        if match:
            # keep draining the pipe so a chatty server never blocks on a full pipe
            threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
            return ServerProcess(proc, int(match.group(1)), lines)
    proc.wait()
    raise RuntimeError("server exited before listening:\n" + "".join(lines))


@pytest.fixture
def server_process() -> Iterator[type[ServerProcess]]:
    """Start ``wirehub serve`` subprocesses; every one is stopped by PID afterwards."""
    started: list[ServerProcess] = []

    def start(*args: str, port: int = 0) -> ServerProcess:
        sp = start_server_process(*args, port=port)
        started.append(sp)
        return sp

    yield start  # type: ignore[misc]
    for sp in started:
        if sp.proc.poll() is None:
            sp.proc.kill()
            sp.proc.wait()


# -- Redis ---------------------------------------------------------------------------------
def free_port() -> int:
    """A port free on 127.0.0.1 right now (for servers that cannot bind port 0 themselves)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(UNIT * 2)


def start_redis(port: int | None = None) -> RedisServer:
    """Start a private redis-server on 127.0.0.1 (no persistence); wait until it answers."""
    import shutil
    import socket
    import time

    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (make test installs it: scripts/test.sh)")
    port = port or free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + UNIT * 2
    while True:  # redis-server has no readiness pipe: poll its port until it answers PING
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=UNIT) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return RedisServer(proc, port)
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.02)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for one test, stopped by PID afterwards."""
    server = start_redis()
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()

"""Shared fixtures: real servers on 127.0.0.1 with port 0, scalable timeouts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wirehub.apps import default_app
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner

ROOT = Path(__file__).resolve().parent.parent
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

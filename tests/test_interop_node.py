"""Interop: a real ``wirehub serve`` process driven by the Node.js ``ws`` client.

The client script is tests/interop/ws_client.mjs; scripts/node_deps.sh installs
node/npm and the ``ws`` package when they are missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INTEROP = ROOT / "tests" / "interop"
SCALE = float(os.environ.get("WIREHUB_TEST_TIMEOUT_SCALE", "1") or 1)
READY_TIMEOUT = 30 * SCALE  # seconds for the server to print its ready line
NODE_TIMEOUT = 60 * SCALE  # seconds for the whole client script
READY_RE = re.compile(r"wirehub listening on https?://[^\s:]+:(\d+)")


def _wirehub_exe() -> str:
    """The ``wirehub`` console script of the running interpreter's environment."""
    for cand in (Path(sys.executable).parent / "wirehub", ROOT / ".venv" / "bin" / "wirehub"):
        if cand.exists():
            return str(cand)
    found = shutil.which("wirehub")
    if found is None:
        pytest.fail("the wirehub command is not installed (pip install -e '.[test]')")
    return found


@dataclass
class Server:
    """A ``wirehub serve`` subprocess and everything it printed so far."""

    proc: subprocess.Popen[str]
    port: int = 0
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output[-60:])


def _start_server() -> Server:
    cmd = [
        _wirehub_exe(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--echo-max-message-size",
        "20971520",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
    )
    server = Server(proc)
    ready = threading.Event()

    def drain() -> None:
        # Read every line (so the pipe never fills up) and spot the ready line.
        assert proc.stdout is not None
        for line in proc.stdout:
            server.output.append(line)
            m = READY_RE.search(line)
            if m and not ready.is_set():
                server.port = int(m.group(1))
                ready.set()
        ready.set()  # EOF: the server exited; port stays 0

    threading.Thread(target=drain, name="wirehub-server-output", daemon=True).start()
    ready.wait(READY_TIMEOUT)
    if not server.port:
        _stop_server(server)
        pytest.fail(
            f"`{' '.join(cmd)}` printed no 'wirehub listening on' line within "
            f"{READY_TIMEOUT:.0f} s (exit code {proc.returncode}):\n{server.log()}"
        )
    return server


def _stop_server(server: Server) -> None:
    """Terminate the server by its PID: SIGTERM, then SIGKILL after 10 s."""
    proc = server.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10 * SCALE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def wirehub_server() -> Iterator[Server]:
    server = _start_server()
    try:
        yield server
    finally:
        _stop_server(server)


def _ensure_node() -> str:
    """Path of ``node`` with tests/interop/node_modules/ws installed (skip if impossible)."""
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "ws" / "package.json").exists():
        res = subprocess.run(
            ["bash", str(ROOT / "scripts" / "node_deps.sh")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600 * SCALE,
        )
        node = shutil.which("node")
        if res.returncode != 0 or node is None:
            pytest.skip(
                f"Node.js / the ws package could not be installed: "
                f"{(res.stderr or res.stdout).strip()[-500:]}"
            )
    return node


@pytest.mark.timeout(int(900 * SCALE))
def test_node_ws_client_interop(wirehub_server: Server) -> None:
    """The Node `ws` client gets /echo round trips and the v1 protocol right on a real server."""
    node = _ensure_node()
    url = f"ws://127.0.0.1:{wirehub_server.port}"
    res = subprocess.run(
        [node, str(INTEROP / "ws_client.mjs"), url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
    )
    try:
        summary = json.loads(res.stdout)
        failed = [c for c in summary.get("checks", []) if not c.get("ok")]
    except ValueError:
        summary, failed = None, []
    assert res.returncode == 0, (
        f"node ws_client.mjs exited {res.returncode}: {res.stderr.strip()}\n"
        f"failed checks: {json.dumps(failed, indent=1) if summary else res.stdout[-2000:]}\n"
        f"server output:\n{wirehub_server.log()}"
    )
    assert summary is not None and summary["ok"] is True and summary["failed"] == 0
    assert wirehub_server.proc.poll() is None, "the server died during the interop run"


def test_server_stops_on_terminate() -> None:
    """The fixture's cleanup works: SIGTERM to the server's PID ends it promptly."""
    server = _start_server()
    start = time.monotonic()
    _stop_server(server)
    assert server.proc.returncode is not None
    assert time.monotonic() - start < 10 * SCALE, server.log()

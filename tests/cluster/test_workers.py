"""`wirehub serve --workers N`: N processes on one port, joined by Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import wirehub
from tests.cluster.conftest import parse_pids
from tests.conftest import ROOT


def kill_pids(pids: list[int]) -> None:
    """SIGKILL the worker processes by PID, if a failed test left them running."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def healthz_node(url: str, unit: float) -> str:
    """The node answering GET /healthz on a new connection (the kernel picks a worker)."""
    with urllib.request.urlopen(url + "/healthz", timeout=unit) as response:
        return json.loads(response.read())["node"]


def read_until_listening(proc: subprocess.Popen[str], lines: list[str], count: int) -> None:
    """Collect ``proc``'s output until ``count`` workers said they listen (then keep draining)."""
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks until a process prints or all exit
        lines.append(line)
        if sum("wirehub listening on" in seen for seen in lines) == count:
            threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True).start()
            return
    raise AssertionError("--workers exited before listening:\n" + "".join(lines))


async def test_two_workers_serve_one_port_and_share_channels(redis_server, unit: float) -> None:
    """node-w0 and node-w1 answer on one port and share a channel; SIGTERM: both stop, exit 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wirehub", "serve", "--host", "127.0.0.1", "--port", "0",
         "--workers", "2", "--broker", redis_server.url, "--node-name", "node"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    workers: list[int] = []
    try:
        try:
            await asyncio.wait_for(asyncio.to_thread(read_until_listening, proc, lines, 2),
                                   unit * 4)
        except TimeoutError:
            raise AssertionError("both workers did not listen in time:\n"
                                 + "".join(lines)) from None
        text = "".join(lines)
        workers = parse_pids(text, r"2 workers on port \d+ \(pids ")
        assert len(workers) == 2, text
        url = "http://127.0.0.1:" + re.search(r"workers on port (\d+)", text).group(1)  # type: ignore[union-attr]

        seen: set[str] = set()
        for _ in range(200):  # SO_REUSEPORT spreads connections by a hash of the address
            seen.add(await asyncio.to_thread(healthz_node, url, unit))
            if len(seen) == 2:
                break
        assert seen == {"node-w0", "node-w1"}

        async with contextlib.AsyncExitStack() as stack:
            by_node: dict[str, wirehub.Client] = {}
            for _ in range(200):
                client = await stack.enter_async_context(wirehub.connect(
                    url, request_timeout=unit, open_timeout=unit))
                by_node.setdefault(client.node or "", client)
                if len(by_node) == 2:
                    break
            assert set(by_node) == {"node-w0", "node-w1"}
            sub = await by_node["node-w1"].subscribe("workers.shared")
            offset = await by_node["node-w0"].publish("workers.shared", {"from": "w0"})
            message = await asyncio.wait_for(sub.get(), unit)
            assert (message.offset, message.data) == (offset, {"from": "w0"})

        proc.send_signal(signal.SIGTERM)
        try:  # each worker drains within shutdown_timeout (4 s); slack for a loaded machine
            code = await asyncio.to_thread(proc.wait, unit * 4)
        except subprocess.TimeoutExpired:
            raise AssertionError("the workers did not stop after SIGTERM:\n"
                                 + "".join(lines)) from None
        assert code == 0, "".join(lines)
        for pid in workers:  # the parent waited for them: they are gone
            assert not os.path.exists(f"/proc/{pid}"), pid
    finally:
        workers = workers or parse_pids("".join(lines), r"2 workers on port \d+ \(pids ")
        kill_pids(workers)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_with_the_memory_broker_refuse_to_start(unit: float) -> None:
    """--workers 2 without a shared broker exits 2 and says to use Redis."""
    done = subprocess.run(
        [sys.executable, "-m", "wirehub", "serve", "--workers", "2", "--host", "127.0.0.1",
         "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=unit * 2,
        env={k: v for k, v in os.environ.items() if not k.startswith("WIREHUB_")})
    assert done.returncode == 2, done
    assert "--workers 2 needs a shared broker" in done.stderr
    assert "--broker redis://" in done.stderr
    assert "listening" not in done.stdout

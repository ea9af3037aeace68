"""deploy/: the nginx config that ships is the template the cluster tests run, and
run-cluster.sh starts Redis, the nodes and nginx, and stops each by PID on Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

import wirehub
from tests.cluster.conftest import nginx_executable, render_nginx_conf
from tests.conftest import ROOT, free_port

DEPLOY = ROOT / "deploy"
SCRIPT = DEPLOY / "run-cluster.sh"
#: run-cluster.sh's defaults: nginx on 8765, node-i on 8700 + i
EXAMPLE = ("127.0.0.1:8765", [8701, 8702, 8703])


def test_shipped_nginx_conf_is_the_tested_template_with_the_script_defaults() -> None:
    """deploy/nginx.conf is the template filled in by run-cluster.sh, byte for byte."""
    shipped = (DEPLOY / "nginx.conf").read_text()
    assert shipped == render_nginx_conf(*EXAMPLE)
    printed = subprocess.run(["bash", str(SCRIPT), "--print-nginx-conf"], capture_output=True,
                             text=True, check=True, timeout=30)
    assert printed.stdout == shipped


def test_nginx_conf_proxies_websockets_with_long_timeouts() -> None:
    """Upgrade over HTTP/1.1, Host and X-Forwarded-*, idle timeouts above the 20 s pings."""
    conf = render_nginx_conf(*EXAMPLE)
    for line in ("map $http_upgrade $connection_upgrade", "proxy_http_version 1.1;",
                 "proxy_set_header Upgrade $http_upgrade;",
                 "proxy_set_header Connection $connection_upgrade;",
                 "proxy_set_header Host $http_host;",
                 "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                 "proxy_set_header X-Forwarded-Proto $scheme;", "location / {"):
        assert line in conf
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        seconds = int(re.search(directive + r" (\d+)s;", conf).group(1))  # type: ignore[union-attr]
        assert seconds > 20
    assert conf.count("server 127.0.0.1:87") == 3 and "ip_hash" not in conf  # no stickiness


def test_shipped_nginx_conf_passes_nginx_t(tmp_path: Path) -> None:
    """`nginx -t` accepts deploy/nginx.conf as shipped (prefix in a temp dir)."""
    done = subprocess.run([nginx_executable(), "-t", "-p", str(tmp_path), "-c",
                           str(DEPLOY / "nginx.conf"), "-e", "stderr"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def read_until(proc: subprocess.Popen[str], marker: str, lines: list[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            return line
    raise AssertionError("run-cluster.sh ended before " + marker + ":\n" + "".join(lines))


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_run_cluster_script_serves_through_nginx_and_ctrl_c_stops_every_pid(
        tmp_path: Path, unit: float) -> None:
    """run-cluster.sh: 3 nodes answer through nginx; Ctrl-C stops every PID, exit 0, no temp dir."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make test installs it: scripts/test.sh)")
    nginx_executable()
    front, redis_port, node_ports = free_port(), free_port(), [free_port() for _ in range(3)]
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), "--port", str(front), "--redis-port", str(redis_port),
         "--node-ports", ",".join(map(str, node_ports)), "--stop-timeout", "5",
         "--", "--drain-period", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        env={**os.environ, "TMPDIR": str(tmp_path),  # the wirehub of this test run
             "WIREHUB": str(Path(sys.executable).with_name("wirehub"))},
        # as from a terminal, even when pytest runs as a background job (SIGINT ignored,
        # and a shell cannot trap a signal ignored when it started)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    pids: list[int] = []
    try:
        banner = await asyncio.wait_for(asyncio.to_thread(
            read_until, proc, "run-cluster.sh: pids:", lines), unit * 4)
        pids = [int(p) for p in re.findall(r"\d+", banner.split("pids:")[1])]
        assert len(pids) == 5, banner  # redis, three nodes, nginx
        threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True).start()
        assert len(list(tmp_path.glob("wirehub-cluster.*"))) == 1

        url = f"http://127.0.0.1:{front}"

        def healthz() -> str:
            with urllib.request.urlopen(url + "/healthz", timeout=unit) as response:
                return json.loads(response.read())["node"]

        names = {await asyncio.to_thread(healthz) for _ in range(3)}
        assert names == {"node-1", "node-2", "node-3"}
        async with wirehub.connect(url, request_timeout=unit, open_timeout=unit) as client:
            assert client.node in names
            assert await client.send("echo", {"n": 1}) == {"n": 1}

        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, unit * 3) == 0, "".join(lines)
        assert [pid for pid in pids if running(pid)] == []
        assert list(tmp_path.glob("wirehub-cluster.*")) == []
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", front), timeout=unit).close()
    finally:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(unit * 2)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

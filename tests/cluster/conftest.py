"""A real cluster for the scale-out tests: one private Redis, 2-3 `wirehub serve` nodes
and nginx in front, configured from deploy/nginx.conf.template. Every process is
started here on 127.0.0.1 and stopped by its PID."""

from __future__ import annotations

import functools
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    UNIT,
    RedisServer,
    ServerProcess,
    free_port,
    start_redis,
    start_server_process,
)

TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
#: the options every node of a test cluster gets, besides --broker and --node-name;
#: a seeded feed of two symbols, so the ticks a client sees can be computed here
NODE_ARGS = ("--stocks-rate", "100", "--stocks-seed", "7", "--stocks-symbols", "AAPL,NVDA")
STOCKS_SEED, STOCKS_RATE, STOCKS_SYMBOLS = 7, 100.0, ("AAPL", "NVDA")


def render_nginx_conf(listen: str, node_ports: list[int]) -> str:
    """deploy/nginx.conf.template filled in, exactly as deploy/run-cluster.sh does it."""
    out: list[str] = []
    for line in TEMPLATE.read_text().splitlines():
        if "@UPSTREAM_SERVERS@" in line:
            indent = line[: line.index("@UPSTREAM_SERVERS@")]
            out += [f"{indent}server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;"
                    for port in node_ports]
        else:
            out.append(line.replace("@LISTEN@", listen))
    return "\n".join(out) + "\n"


def nginx_executable() -> str:
    exe = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if exe is None:
        pytest.skip("nginx is not installed (make test installs it: scripts/test.sh)")
    return exe


@dataclass
class Nginx:
    proc: subprocess.Popen[str]
    port: int
    prefix: Path
    lines: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> None:
        """SIGTERM (fast shutdown: the master stops its workers), SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(UNIT * 2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nginx(node_ports: list[int], prefix: Path) -> Nginx:
    """nginx in the foreground with a config rendered into ``prefix``, on a free port.

    ``-p`` puts the pid file and temp dirs in ``prefix``; ``-e stderr`` keeps nginx
    away from the system's error log. Returns once nginx has bound its port (it
    logs "start worker processes" after binding).
    """
    exe = nginx_executable()
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render_nginx_conf(f"127.0.0.1:{port}", node_ports))
    proc = subprocess.Popen([exe, "-p", str(prefix), "-c", str(conf), "-e", "stderr"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks until nginx logs or exits
        lines.append(line)
        if "start worker processes" in line:
            threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
            return Nginx(proc, port, prefix, lines)
    proc.wait()
    raise RuntimeError("nginx exited before serving:\n" + "".join(lines))


@dataclass
class Cluster:
    """Redis, the nodes (``node-1``...) and nginx in front of them."""

    redis: RedisServer
    nodes: list[ServerProcess]
    nginx: Nginx
    names: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        """Where clients connect: nginx's /ws."""
        return self.nginx.ws_url

    def node(self, name: str) -> ServerProcess:
        return self.nodes[self.names.index(name)]


def kill(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` by its PID if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def start_cluster(prefix: Path, nodes: int = 3, *args: str,
                  started: list[Callable[[], None]]) -> Cluster:
    """Redis, ``nodes`` nodes started in parallel, nginx; each registered in ``started``."""
    redis = start_redis()
    started.append(functools.partial(kill, redis.proc))
    names = [f"node-{i}" for i in range(1, nodes + 1)]
    procs: list[ServerProcess] = []

    def start_node(name: str) -> ServerProcess:
        sp = start_server_process("--broker", redis.url, "--node-name", name, *NODE_ARGS, *args)
        procs.append(sp)  # list.append is atomic: registered even if a sibling fails
        return sp

    try:
        with ThreadPoolExecutor(nodes) as pool:
            servers = list(pool.map(start_node, names))
    finally:
        started += [functools.partial(kill, sp.proc) for sp in procs]
    nginx = start_nginx([sp.port for sp in servers], prefix)
    started.append(nginx.stop)
    return Cluster(redis, servers, nginx, names)


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Start clusters for one test: ``make_cluster(nodes=3, *serve_args)``."""
    stoppers: list[Callable[[], None]] = []

    def make(nodes: int = 3, *args: str) -> Cluster:
        return start_cluster(tmp_path / f"nginx{len(stoppers)}", nodes, *args,
                             started=stoppers)

    yield make
    for stop in reversed(stoppers):  # nginx first, then the nodes, then Redis
        stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One healthy 3-node cluster shared by a module's tests (each uses its own channels)."""
    stoppers: list[Callable[[], None]] = []
    try:
        yield start_cluster(tmp_path_factory.mktemp("nginx"), 3, started=stoppers)
    finally:  # also what started before a failure
        for stop in reversed(stoppers):
            stop()


def parse_pids(text: str, pattern: str) -> list[int]:
    """PIDs printed after ``pattern`` in a process's output."""
    match = re.search(pattern + r"([\d ]+)", text)
    return [int(p) for p in match.group(1).split()] if match else []

"""Start a server, run the load generator against it, stop the server.

The server runs pinned to one core (``taskset -c 0``) and the load generator
to another (``taskset -c 1``), so that neither steals the other's CPU. Both
are children of this process and are stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .scenarios import Scenario
from .servers import NODE_DIR, ServerSpec, node_executable

__all__ = ["BenchError", "Pinning", "ServerProcess", "ensure_node_deps", "machine_busy_pct",
           "raise_fd_limit", "run_loadgen", "start_server", "wait_quiet"]


class BenchError(Exception):
    """The benchmark cannot go on (a missing tool, a server that did not start)."""


@dataclass(frozen=True)
class Pinning:
    server_cpu: int | None = 0
    loadgen_cpu: int | None = 1

    @classmethod
    def choose(cls, enabled: bool, server_cpu: int = 0, loadgen_cpu: int = 1) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not enabled or shutil.which("taskset") is None or len(cpus) < 2:
            return cls(None, None)
        return cls(server_cpu, loadgen_cpu)

    def prefix(self, cpu: int | None) -> list[str]:
        return [] if cpu is None else ["taskset", "-c", str(cpu)]

    @property
    def describe(self) -> str:
        if self.server_cpu is None:
            return "not pinned"
        return f"server on core {self.server_cpu}, load generator on core {self.loadgen_cpu}"


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _busy_ticks() -> int:
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0
    return f[0] + f[1] + f[2] + f[7]  # user nice system steal


def machine_busy_pct(seconds: float = 1.0) -> float:
    """CPU the whole machine used over ``seconds``, in % of one core."""
    t0, b0 = time.monotonic(), _busy_ticks()
    time.sleep(seconds)
    return 100.0 * (_busy_ticks() - b0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)


def wait_quiet(max_wait: float, threshold: float = 15.0) -> tuple[float, float]:
    """Between runs, wait (at most ``max_wait`` s) until other programs use < threshold %.

    A shared machine (CI, other jobs) skews every figure; this waits for a lull.
    Returns (seconds waited, the last busy % seen).
    """
    t0 = time.monotonic()
    busy = machine_busy_pct(0.5)
    while busy > threshold and time.monotonic() - t0 < max_wait:
        busy = machine_busy_pct(1.0)
    return time.monotonic() - t0, busy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env() -> dict[str, str]:
    """The environment without WIREHUB_* settings that would change the server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIREHUB_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class ServerProcess:
    spec: ServerSpec
    proc: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid  # taskset execs the server: same PID

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_server(spec: ServerSpec, pinning: Pinning, log_path: Path,
                 timeout: float = 30.0) -> ServerProcess:
    """Start ``spec`` on a free port and wait until it accepts TCP connections."""
    port = free_port()
    cmd = [*pinning.prefix(pinning.server_cpu), *spec.command(port)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - closed by ServerProcess.stop
    log.write(f"$ {' '.join(cmd)}\n".encode())
    log.flush()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_server_env(),
                            start_new_session=True)
    server = ServerProcess(spec, proc, port, log)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            server.stop()
            raise BenchError(f"{spec.name} exited with {proc.returncode} before listening; "
                             f"see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise BenchError(f"{spec.name} did not listen on port {port} within {timeout:g} s")
        time.sleep(0.05)


def ensure_node_deps(node_dir: Path = NODE_DIR) -> Path:
    """The directory with loadgen.mjs whose node_modules holds ws and socket.io-client.

    Installs them with ``npm ci`` on first use: in the package itself when it is
    writable (a checkout), else in a copy under ~/.cache/wirehub/bench-node.
    """
    if node_executable() is None:
        raise BenchError("Node.js is needed for the load generator (apt-get install nodejs npm)")
    work = node_dir
    if not os.access(node_dir, os.W_OK):
        work = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wirehub" / \
            "bench-node"
        work.mkdir(parents=True, exist_ok=True)
        for f in node_dir.iterdir():
            if f.is_file():
                shutil.copy2(f, work / f.name)
    needed = [work / "node_modules" / m / "package.json" for m in ("ws", "socket.io-client")]
    if all(p.exists() for p in needed):
        return work
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("npm is needed once to install ws and socket.io-client "
                         "(apt-get install npm)")
    how = "ci" if (work / "package-lock.json").exists() else "install"
    done = subprocess.run([npm, how, "--no-audit", "--no-fund", "--loglevel=error"], cwd=work,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise BenchError(f"npm {how} in {work} failed:\n{done.stderr[-2000:]}")
    return work


def run_loadgen(node_dir: Path, server: ServerProcess, scenario: Scenario, pinning: Pinning,
                log_path: Path, source_addresses: list[str] | None = None) -> list[dict[str, Any]]:
    """Run one scenario; return the load generator's records."""
    cfg = {**scenario.loadgen, "kind": server.spec.kind, "url": server.url,
           "server_pid": server.pid, "clk_tck": os.sysconf("SC_CLK_TCK"),
           "timeout": scenario.timeout, "source_addresses": source_addresses or []}
    cmd = [*pinning.prefix(pinning.loadgen_cpu), node_executable() or "node",
           str(node_dir / "loadgen.mjs"), json.dumps(cfg)]
    with open(log_path, "ab") as log:
        log.write(f"$ loadgen {json.dumps(cfg)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=scenario.timeout + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise BenchError(f"the load generator did not finish {scenario.name} within "
                             f"{scenario.timeout + 30:g} s") from None
        except BaseException:  # interrupted: do not leave the load generator running
            proc.kill()
            proc.wait()
            raise
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("{")]
    if not lines:
        raise BenchError(f"the load generator printed no result (exit {proc.returncode}); "
                         f"see {log_path}")
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise BenchError(f"load generator: {answer['error'].splitlines()[0]}")
    return list(answer["results"])


@contextlib.contextmanager
def running(spec: ServerSpec, pinning: Pinning, log_path: Path) -> Iterator[ServerProcess]:
    server = start_server(spec, pinning, log_path)
    try:
        yield server
    finally:
        server.stop()

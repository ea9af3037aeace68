"""Start a server, run the load generator against it, stop the server.

The server runs pinned to one core (``taskset -c 0``) and the load generator
to another (``taskset -c 1``), so that neither steals the other's CPU. Both
are children of this process and are stopped by PID.
"""

from __future__ import annotations

import contextlib
import hashlib
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

__all__ = ["LOADGEN_C_SOURCE", "BenchError", "Loadgen", "Pinning", "ServerProcess",
           "build_c_loadgen", "c_compiler", "choose_loadgen", "ensure_node_deps",
           "machine_busy_pct", "raise_fd_limit", "run_loadgen", "start_server", "wait_quiet"]

#: the C load generator's single source file (compiled on first use, see build_c_loadgen)
LOADGEN_C_SOURCE = Path(__file__).resolve().parent / "loadgen" / "loadgen.c"


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


def c_compiler() -> str | None:
    """The C compiler that builds the C load generator: $CC, else cc, else gcc."""
    for cand in (os.environ.get("CC"), "cc", "gcc"):
        if cand and shutil.which(cand):
            return cand
    return None


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wirehub"


def build_c_loadgen(source: Path = LOADGEN_C_SOURCE, cache: Path | None = None) -> Path:
    """The compiled C load generator, built on first use.

    ``cc -O2 -o ~/.cache/wirehub/bench-loadgen/<sha256 of the sources, 16 hex>/loadgen
    loadgen.c``, with the headers beside ``source`` (``*.h``) copied along: a changed
    source gets a new directory, an unchanged one is never rebuilt. The cache
    ($XDG_CACHE_HOME or ~/.cache) is used rather than the package directory so that a
    read-only install works the same as a checkout.
    """
    cc = c_compiler()
    if cc is None:
        raise BenchError("a C compiler (cc or gcc) is needed for the C load generator "
                         "(apt-get install gcc), or use --loadgen node")
    files = {source.name: source.read_bytes()}
    files.update((h.name, h.read_bytes()) for h in sorted(source.parent.glob("*.h")))
    digest = hashlib.sha256(b"".join(name.encode() + b"\0" + code
                                     for name, code in files.items())).hexdigest()[:16]
    where = (cache or _cache_root() / "bench-loadgen") / digest
    exe = where / "loadgen"
    if exe.exists() and os.access(exe, os.X_OK):
        return exe
    where.mkdir(parents=True, exist_ok=True)
    for name, code in files.items():
        (where / name).write_bytes(code)
    tmp = where / f"loadgen.{os.getpid()}.tmp"
    done = subprocess.run([cc, "-O2", "-o", str(tmp), str(where / source.name)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BenchError(f"{cc} could not build the C load generator:\n{done.stderr[-2000:]}")
    os.replace(tmp, exe)  # atomic: a concurrent run sees the old or the new file, whole
    return exe


@dataclass(frozen=True)
class Loadgen:
    """Which load generator drives the servers: ``c`` (the default) or ``node``."""

    kind: str
    #: the command before the JSON config argument
    argv: tuple[str, ...]

    @property
    def describe(self) -> str:
        return {"c": "C (loadgen.c: epoll, one thread)",
                "node": "Node.js (loadgen.mjs: ws, socket.io-client)"}.get(self.kind, self.kind)


def choose_loadgen(kind: str | None, node_dir: Path | None = None) -> tuple[Loadgen, str | None]:
    """The load generator for ``kind`` (None: C when a compiler is found, else Node).

    Returns it and a note to print when the choice was not the one asked for.
    """
    note = None
    if kind is None:
        if c_compiler() is not None:
            kind = "c"
        else:
            kind = "node"
            note = ("no C compiler (cc/gcc) found: using the Node.js load generator, which "
                    "saturates its core near 125k messages/s (apt-get install gcc for the C one)")
    if kind == "c":
        return Loadgen("c", (str(build_c_loadgen()),)), note
    if kind == "node":
        work = node_dir or ensure_node_deps()
        return Loadgen("node", (node_executable() or "node", str(work / "loadgen.mjs"))), note
    raise BenchError(f"unknown load generator {kind!r}: c or node")


def run_loadgen(loadgen: Loadgen | Path, server: ServerProcess, scenario: Scenario,
                pinning: Pinning, log_path: Path,
                source_addresses: list[str] | None = None) -> list[dict[str, Any]]:
    """Run one scenario; return the load generator's records.

    ``loadgen`` is a :class:`Loadgen`, or (as before there was a choice) the
    directory of the Node.js ``loadgen.mjs``. Both take the same JSON config and
    print the same records.
    """
    if isinstance(loadgen, Path):
        loadgen = Loadgen("node", (node_executable() or "node", str(loadgen / "loadgen.mjs")))
    cfg = {**scenario.loadgen, "kind": server.spec.kind, "url": server.url,
           "server_pid": server.pid, "clk_tck": os.sysconf("SC_CLK_TCK"),
           "timeout": scenario.timeout, "source_addresses": source_addresses or []}
    cmd = [*pinning.prefix(pinning.loadgen_cpu), *loadgen.argv, json.dumps(cfg)]
    with open(log_path, "ab") as log:
        log.write(f"$ loadgen ({loadgen.kind}) {json.dumps(cfg)}\n".encode())
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
    results = list(answer["results"])
    for r in results:
        r["loadgen"] = loadgen.kind
    return results


@contextlib.contextmanager
def running(spec: ServerSpec, pinning: Pinning, log_path: Path) -> Iterator[ServerProcess]:
    server = start_server(spec, pinning, log_path)
    try:
        yield server
    finally:
        server.stop()

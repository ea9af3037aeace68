"""``wirehub bench``: every server through every scenario, then the table.

For each server and scenario: start the server fresh on its own core, run the
load generator on the other core (the C one, ``loadgen/loadgen.c``, compiled on
first use; or the Node.js one, ``node/loadgen.mjs``, with ``--loadgen node``),
keep its records. Then ratios to
Node ``ws``, the targets of issue #6, a table on the terminal, and under the
output directory ``latest.json`` (one record per server and scenario),
``latest.txt``, ``latest.md``, ``latest.png`` and the server logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from . import report
from .runner import (
    BenchError,
    Pinning,
    c_compiler,
    choose_loadgen,
    ensure_node_deps,
    raise_fd_limit,
    run_loadgen,
    running,
    wait_quiet,
)
from .scenarios import SCENARIOS, plan, resolve_scenarios
from .servers import SERVERS

__all__ = ["BenchOptions", "run_bench"]

#: open files each process needs beyond its connections
FD_MARGIN = 200


@dataclass
class BenchOptions:
    servers: list[str] = field(default_factory=lambda: list(SERVERS))
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    out: Path = Path("bench/results")
    quick: bool = False
    big: bool = False
    duration: float | None = None
    warmup: float | None = None
    pin: bool = True
    server_cpu: int = 0
    loadgen_cpu: int = 1
    chart: bool = True
    #: per scenario: load generator parameters to override (tests use tiny ones)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: socket.io: the scenarios it runs (python-socketio is slow; see docs/performance.md)
    socketio_scenarios: list[str] | None = None
    #: before each run, wait up to this many seconds for other programs to go quiet
    wait_quiet: float = 0.0
    #: "c", "node", or None: C when a C compiler is found, else Node.js
    loadgen: str | None = None
    command: str = ""


def _versions(node_dir: Path | None, loadgen: str) -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for dist in ("wirehub", "aiohttp", "websockets", "msgspec", "uvloop", "picows",
                 "python-socketio"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    node = shutil.which("node")
    if node:
        out["node"] = subprocess.run([node, "--version"], capture_output=True,
                                     text=True).stdout.strip()
    for pkg in ("ws", "socket.io-client"):
        pj = node_dir / "node_modules" / pkg / "package.json" if node_dir else None
        if pj is not None and pj.exists():
            out[pkg] = json.loads(pj.read_text())["version"]
    cc = c_compiler()
    if loadgen == "c" and cc:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            first = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                   timeout=10).stdout.splitlines()
            if first:
                out["cc"] = first[0]
    return out


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "loadavg_at_start": load}


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def _source_addresses(connections: int) -> list[str]:
    """Enough 127.0.0.x source addresses that no one runs out of ephemeral ports."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        ports = high - low
    except (OSError, ValueError):
        ports = 28000
    need = max(1, -(-connections // max(1000, ports - 2000)))
    return [f"127.0.0.{i + 1}" for i in range(need)] if need > 1 else []


def run_bench(opts: BenchOptions, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Run the benchmark; write the files; return the JSON document."""
    def say(msg: str) -> None:
        print(msg, file=out, flush=True)

    started = time.monotonic()
    scenarios = resolve_scenarios(opts.scenarios)
    unknown = [s for s in opts.servers if s not in SERVERS]
    if unknown:
        raise BenchError(f"unknown server(s) {', '.join(unknown)}; known: {', '.join(SERVERS)}")
    notes: list[str] = []
    # node_modules (ws) is needed by the Node load generator and by the Node ws peer
    node_dir = None
    node_missing = None
    if opts.loadgen == "node" or "ws" in opts.servers:
        try:
            node_dir = ensure_node_deps()
        except BenchError as exc:
            if opts.loadgen == "node":
                raise
            node_missing = str(exc)
    loadgen, note = choose_loadgen(opts.loadgen, node_dir)
    if note:
        say(f"note: {note}")
        notes.append(note)
    pinning = Pinning.choose(opts.pin, opts.server_cpu, opts.loadgen_cpu)
    soft, hard = raise_fd_limit()
    logs = opts.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if pinning.server_cpu is None:
        notes.append("server and load generator NOT pinned (taskset or a second core missing)")
    socketio_only = opts.socketio_scenarios
    if socketio_only is None:
        socketio_only = [s for s in scenarios if s != "rpc"]
    say(f"wirehub bench: {', '.join(opts.servers)} x {', '.join(scenarios)} "
        f"({'quick' if opts.quick else 'full'}{', big' if opts.big else ''}; {pinning.describe}; "
        f"load generator {loadgen.describe}; open files limit {soft})")
    records: list[dict[str, Any]] = []
    for name in opts.servers:
        spec = SERVERS[name]
        missing = spec.missing() or (node_missing if name == "ws" else None)
        for scen in scenarios:
            base = {"server": name, "label": spec.label}
            if scen == "rpc" and spec.kind != "wirehub":
                continue  # request/reply is wirehub's protocol; peers are compared by their echo
            if missing:
                records += [{**base, "scenario": r, "skipped": missing} for r in SCENARIOS[scen]]
                continue
            if name == "socketio" and scen not in socketio_only:
                records += [{**base, "scenario": r, "skipped": "not run for socket.io"}
                            for r in SCENARIOS[scen]]
                continue
            p = plan(scen, quick=opts.quick, big=opts.big, duration=opts.duration,
                     warmup=opts.warmup, overrides=opts.overrides)
            sources = None
            if scen == "idle":
                n = p.loadgen["connections"]
                if n + FD_MARGIN > soft:
                    capped = max(100, soft - FD_MARGIN)
                    notes.append(f"idle: {n:,} connections need {n + FD_MARGIN:,} open files per "
                                 f"process but the limit here is {soft:,} (hard {hard:,}): "
                                 f"measured with {capped:,}")
                    p.loadgen["connections"] = n = capped
                sources = _source_addresses(n)
            waited, busy = wait_quiet(opts.wait_quiet) if opts.wait_quiet > 0 else (0.0, None)
            say(f"  {spec.label:16} {scen:11} ..."
                + (f" (waited {waited:.0f} s for a quiet machine: {busy:.0f}% busy)"
                   if waited >= 1 else ""))
            t0 = time.monotonic()
            try:
                with running(spec, pinning, logs / f"{name}.log") as server:
                    got = run_loadgen(loadgen, server, p, pinning, logs / f"{name}.log", sources)
            except BenchError as exc:
                say(f"    failed: {exc}")
                records += [{**base, "scenario": r, "skipped": f"failed: {exc}"}
                            for r in SCENARIOS[scen]]
                continue
            for r in got:
                r.update(base)
                if busy is not None:
                    r["busy_before_pct"] = round(busy, 1)
                records.append(r)
                say(f"    {r['scenario']:11} {report.figure(r):58} loadgen CPU "
                    f"{report._pct(r.get('lg_cpu'))}  ({time.monotonic() - t0:.1f} s)")
    # keep the records grouped by scenario, in the order of the table
    order = {n: i for i, n in enumerate(report.RECORDS)}
    sorder = {n: i for i, n in enumerate(opts.servers)}
    records.sort(key=lambda r: (order.get(r["scenario"], 99), sorder.get(r["server"], 99)))
    report.annotate(records)
    full_scale = not opts.quick and not opts.overrides
    targets = report.check_targets(records, full_scale)
    meta = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": opts.command or "wirehub bench",
        "mode": "quick" if opts.quick else "full",
        "big": opts.big,
        "pinning": pinning.describe,
        "loadgen": loadgen.kind,
        "loadgen_command": list(loadgen.argv),
        "open_files_limit": soft,
        "machine": _machine(),
        "versions": _versions(node_dir, loadgen.kind),
        "git_commit": _git_commit(),
        "elapsed_s": round(time.monotonic() - started, 1),
        "notes": notes,
        "servers": opts.servers,
        "scenarios": scenarios,
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report.write_json(opts.out / "latest.json", meta, records, targets)
    (opts.out / "runs").mkdir(exist_ok=True)
    report.write_json(opts.out / "runs" / f"{stamp}.json", meta, records, targets)
    table = report.text_table(records, targets, loadgen.describe)
    (opts.out / "latest.txt").write_text(table)
    (opts.out / "latest.md").write_text(report.markdown_table(records, targets, loadgen.describe))
    png = None
    if opts.chart:
        title = (f"wirehub bench {meta['mode']} - {meta['machine']['cpu']} "
                 f"{meta['machine']['cores']} cores - {pinning.describe} - "
                 f"{loadgen.kind} load generator")
        png = report.chart(opts.out / "latest.png", records, title)
    say("")
    say(table)
    for note in notes:
        say(f"note: {note}")
    say(f"wrote {opts.out / 'latest.json'}, latest.txt, latest.md"
        + (", latest.png" if png else " (no chart: pip install matplotlib)")
        + f" in {meta['elapsed_s']:.0f} s")
    return {"meta": meta, "records": records, "targets": targets}

"""``wirehub bench --quick`` works end to end: structure of the JSON and table, never timings.

Runs wirehub and the Node ws peer through echo, rpc, fan-out and latency with
tiny parameters and the C load generator (built with cc on first use); the Node
load generator (the cross-check) once on echo; and the C load generator
speaking Socket.IO to python-socketio. Needs node and npm (the ws peer) and a C
compiler, else skips.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, UNIT
from wirehub.bench.profile import hot_spots
from wirehub.bench.report import annotate, check_targets, text_table
from wirehub.bench.runner import build_c_loadgen, c_compiler
from wirehub.bench.scenarios import plan, resolve_scenarios

pytestmark = pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                                reason="the Node ws peer (and the Node load generator) need "
                                "node and npm")
needs_cc = pytest.mark.skipif(c_compiler() is None, reason="the C load generator needs cc")

TINY = ["--set", "echo.connections=4", "--set", "rpc.connections=4",
        "--set", "fanout.subscribers=20", "--set", "latency10.subscribers=20",
        "--duration", "0.5", "--warmup", "0.2"]


def _bench(out: Path, *args: str) -> tuple[dict, str]:
    cmd = [sys.executable, "-m", "wirehub", "bench", "--quick", "--no-chart", "--out", str(out),
           *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=UNIT * 24)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((out / "latest.json").read_text())
    return doc, done.stdout


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    if c_compiler() is None:
        pytest.skip("the C load generator needs cc")
    out = tmp_path_factory.mktemp("bench")
    doc, stdout = _bench(out, "--loadgen", "c", "--servers", "wirehub,wirehub-aiohttp,ws",
                         "--scenarios", "echo,rpc,fanout,latency10", *TINY)
    assert (out / "latest.txt").read_text() in stdout
    assert (out / "latest.md").exists()
    return doc, stdout


def _sane(r: dict) -> None:
    """A record the load generator measured: a rate, CPU figures, no failure."""
    assert not r.get("skipped"), r
    assert r["value"] > 0, r
    for cpu in ("lg_cpu", "server_cpu", "server_sys_cpu", "other_cpu"):
        assert isinstance(r[cpu], int | float), (cpu, r)
    assert isinstance(r["lg_saturated"], bool) and isinstance(r["flags"], list)
    assert r["errors"] == 0 and r["failed"] == 0, r
    if r["scenario"].startswith("latency"):
        assert r["unit"] == "ms p99" and r["samples"] > 0 and r["deliveries_per_s"] > 0
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["p999_ms"] <= r["max_ms"]
        assert r["lost"] >= 0
    else:
        assert r["unit"] in ("msg/s", "deliveries/s")


def test_json_has_one_record_per_server_and_scenario(quick_run: tuple[dict, str]) -> None:
    """wirehub (both transports): echo, rpc, fanout, latency10; Node ws: the same but rpc."""
    doc, _ = quick_run
    got = {(r["server"], r["scenario"]) for r in doc["records"]}
    mine = {"echo", "rpc", "fanout", "latency10"}
    assert got == ({("wirehub", s) for s in mine} | {("wirehub-aiohttp", s) for s in mine}
                   | {("ws", "echo"), ("ws", "fanout"), ("ws", "latency10")})
    for r in doc["records"]:
        _sane(r)
        assert r["loadgen"] == "c"
        assert r["ratio_to_ws"] > 0  # Node ws ran: every record has its ratio


def test_meta_and_targets(quick_run: tuple[dict, str]) -> None:
    """The JSON says how it was run, and lists issue #6's targets (not judged at this scale)."""
    doc, _ = quick_run
    meta = doc["meta"]
    assert meta["mode"] == "quick" and meta["servers"] == ["wirehub", "wirehub-aiohttp", "ws"]
    assert meta["loadgen"] == "c" and meta["loadgen_command"][0].endswith("loadgen")
    assert "core" in meta["pinning"] or meta["pinning"] == "not pinned"
    assert {"python", "node", "ws", "cc"} <= set(meta["versions"])
    assert len(doc["targets"]) == 10  # five for each wirehub transport
    assert {t["server"] for t in doc["targets"]} == {"wirehub", "wirehub-aiohttp"}
    assert all(t["full_scale"] is False for t in doc["targets"])


def test_node_loadgen_cross_check(tmp_path_factory: pytest.TempPathFactory) -> None:
    """--loadgen node still runs, prints the same record fields as the C one."""
    out = tmp_path_factory.mktemp("bench-node")
    doc, stdout = _bench(out, "--loadgen", "node", "--servers", "wirehub",
                         "--scenarios", "echo", *TINY)
    assert "load generator: Node.js" in stdout
    (r,) = doc["records"]
    _sane(r)
    assert r["loadgen"] == "node" and doc["meta"]["loadgen"] == "node"


@needs_cc
@pytest.mark.skipif(importlib.util.find_spec("socketio") is None,
                    reason="python-socketio is not installed (wirehub[bench])")
def test_c_loadgen_speaks_socketio(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Engine.IO 4 / Socket.IO 5 over WebSocket: echo events, and subscribe acks (channels)."""
    out = tmp_path_factory.mktemp("bench-sio")
    doc, _ = _bench(out, "--loadgen", "c", "--servers", "socketio",
                    "--scenarios", "echo,channels", "--set", "echo.connections=4",
                    "--set", "channels.channels=60", "--duration", "0.5", "--warmup", "0.2")
    by = {r["scenario"]: r for r in doc["records"]}
    assert set(by) == {"echo", "channels"}
    _sane(by["echo"])
    _sane(by["channels"])
    assert by["channels"]["subscriptions"] == 60 * 3


@needs_cc
def test_c_loadgen_builds_once_per_source(tmp_path: Path) -> None:
    """The binary lives under a directory named by the source's hash; a rebuild is a no-op."""
    first = build_c_loadgen(cache=tmp_path)
    assert first.exists() and first.parent.parent == tmp_path
    mtime = first.stat().st_mtime_ns
    assert build_c_loadgen(cache=tmp_path) == first  # type: ignore[arg-type]
    assert first.stat().st_mtime_ns == mtime
    bad = json.loads(subprocess.run([str(first), '{"scenario":"nope","url":"ws://127.0.0.1:9"}'],
                                    capture_output=True, text=True, timeout=UNIT).stdout)
    assert "unknown scenario" in bad["error"]


def test_table_lists_every_server_with_ratio_and_cpu_columns(quick_run: tuple[dict, str]) -> None:
    """The terminal table has the ratio, server and load generator CPU columns."""
    _, stdout = quick_run
    header = next(line for line in stdout.splitlines() if line.startswith("scenario"))
    for col in ("vs Node ws", "server CPU", "loadgen CPU"):
        assert col in header
    assert "targets (issue #6)" in stdout
    assert stdout.count("wirehub ") >= 4 and stdout.count("Node ws ") >= 3
    assert "load generator: C" in stdout


def test_ratios_and_saturation_flags() -> None:
    """Ratios are to Node ws (rpc to ws echo); a load generator over 90% is flagged."""
    records = annotate([
        {"server": "ws", "scenario": "echo", "value": 100.0, "lg_cpu": 50.0},
        {"server": "wirehub", "scenario": "echo", "value": 150.0, "lg_cpu": 95.0},
        {"server": "wirehub", "scenario": "rpc", "value": 80.0, "lg_cpu": 40.0},
        {"server": "ws", "scenario": "idle", "value": 8.0},
        {"server": "wirehub", "scenario": "idle", "value": 12.0},
    ])
    by = {(r["server"], r["scenario"]): r for r in records}
    assert by["wirehub", "echo"]["ratio_to_ws"] == 1.5
    assert by["wirehub", "echo"]["lg_saturated"] and not by["ws", "echo"]["lg_saturated"]
    assert by["wirehub", "rpc"]["ratio_to_ws"] == 0.8
    targets = {t["scenario"]: t for t in check_targets(records, full_scale=True)}
    assert targets["echo"]["met"] is True and targets["rpc"]["met"] is False
    assert targets["idle"]["met"] is True and targets["fanout"]["met"] is None
    assert "LOADGEN SATURATED" in text_table(records, list(targets.values()))


def test_scenario_plans() -> None:
    """Full scale is issue #6's: 50 echo connections, 1,000 subscribers, 10,000 idle."""
    assert plan("echo").loadgen["connections"] == 50
    assert plan("fanout").loadgen["subscribers"] == 1000
    assert plan("idle").loadgen["connections"] == 10_000
    assert plan("idle", big=True).loadgen["connections"] == 50_000
    assert plan("channels").loadgen["channels"] == 10_000
    assert resolve_scenarios(["latency", "connect"]) == ["latency10", "latency100", "idle"]
    with pytest.raises(ValueError, match="unknown scenario"):
        resolve_scenarios(["nope"])


def test_hot_spots_from_collapsed_stacks() -> None:
    """Self and total shares come out of py-spy's raw format."""
    raw = ("process 1;main (a/src/wirehub/x.py:1);write (aiohttp/w.py:9) 3\n"
           "process 1;main (a/src/wirehub/x.py:2) 1\n")
    spots = hot_spots(raw)
    assert spots["samples"] == 4
    assert spots["self"][0] == {"function": "write (aiohttp/w.py)", "samples": 3, "percent": 75.0}
    assert spots["total"][0]["function"] == "main (wirehub/x.py)"

"""``wirehub bench --quick`` works end to end: structure of the JSON and table, never timings.

Runs wirehub and one peer (aiohttp) through echo, rpc and fan-out with tiny
parameters; needs node and npm (the load generator is Node.js), else skips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, UNIT
from wirehub.bench.profile import hot_spots
from wirehub.bench.report import annotate, check_targets, text_table
from wirehub.bench.scenarios import plan, resolve_scenarios

pytestmark = pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                                reason="the benchmark's load generator needs node and npm")

TINY = ["--set", "echo.connections=4", "--set", "rpc.connections=4",
        "--set", "fanout.subscribers=20", "--duration", "0.5", "--warmup", "0.2"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "wirehub", "bench", "--quick", "--servers", "wirehub,aiohttp",
           "--scenarios", "echo,rpc,fanout", "--out", str(out), *TINY]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=UNIT * 24)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((out / "latest.json").read_text())
    assert (out / "latest.txt").read_text() in done.stdout
    assert (out / "latest.md").exists()
    return doc, done.stdout


def test_json_has_one_record_per_server_and_scenario(quick_run: tuple[dict, str]) -> None:
    """wirehub: echo, rpc, fanout; aiohttp: echo, fanout (rpc is wirehub's protocol only)."""
    doc, _ = quick_run
    got = {(r["server"], r["scenario"]) for r in doc["records"]}
    assert got == {("wirehub", "echo"), ("wirehub", "rpc"), ("wirehub", "fanout"),
                   ("aiohttp", "echo"), ("aiohttp", "fanout")}
    for r in doc["records"]:
        assert not r.get("skipped"), r
        assert r["value"] > 0 and r["unit"] in ("msg/s", "deliveries/s")
        for cpu in ("lg_cpu", "server_cpu", "other_cpu"):
            assert isinstance(r[cpu], int | float)
        assert isinstance(r["lg_saturated"], bool) and isinstance(r["flags"], list)
        assert r["ratio_to_ws"] is None  # Node ws was not in this run
        assert r["errors"] == 0 and r["failed"] == 0


def test_meta_and_targets(quick_run: tuple[dict, str]) -> None:
    """The JSON says how it was run, and lists issue #6's targets (not judged at this scale)."""
    doc, _ = quick_run
    meta = doc["meta"]
    assert meta["mode"] == "quick" and meta["servers"] == ["wirehub", "aiohttp"]
    assert "core" in meta["pinning"] or meta["pinning"] == "not pinned"
    assert {"python", "aiohttp", "node", "ws"} <= set(meta["versions"])
    assert len(doc["targets"]) == 5
    assert all(t["full_scale"] is False for t in doc["targets"])


def test_table_lists_every_server_with_ratio_and_cpu_columns(quick_run: tuple[dict, str]) -> None:
    """The terminal table has the ratio, server and load generator CPU columns."""
    _, stdout = quick_run
    header = next(line for line in stdout.splitlines() if line.startswith("scenario"))
    for col in ("vs Node ws", "server CPU", "loadgen CPU"):
        assert col in header
    assert "targets (issue #6)" in stdout
    assert stdout.count("wirehub ") >= 3 and stdout.count("aiohttp ") >= 2


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

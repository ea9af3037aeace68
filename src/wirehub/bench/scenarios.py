"""The scenarios and their parameters in full, ``--quick`` and ``--big`` mode.

A *scenario* is one load-generator run against a fresh server; it may yield
several records (``idle`` also gives ``connect``). Figures:

=============  ======================================================  ==============
record         what                                                     better
=============  ======================================================  ==============
echo           50 connections pipelining 100-byte messages (/echo)      higher msg/s
rpc            the same through /ws: ``send`` type ``echo`` -> reply    higher msg/s
fanout         1,000 subscribers, one publisher as fast as a window     higher
               of 8 broadcasts in flight allows                         deliveries/s
latency10/100  1,000 subscribers, 10 or 100 publishes/s                 lower p99 ms
idle           10,000 open connections: server RSS growth / connection  lower KiB
connect        the rate those connections were opened at (64 at once)   higher conn/s
channels       10,000 channels x 3 subscribers (15 per connection),     higher
               one publisher round-robin                                deliveries/s
=============  ======================================================  ==============
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RECORDS", "SCENARIOS", "Scenario", "plan", "resolve_scenarios"]

#: scenario name -> the records it yields
SCENARIOS: dict[str, tuple[str, ...]] = {
    "echo": ("echo",),
    "rpc": ("rpc",),
    "fanout": ("fanout",),
    "latency10": ("latency10",),
    "latency100": ("latency100",),
    "idle": ("idle", "connect"),
    "channels": ("channels",),
}

#: record name -> (unit, higher is better, short description)
RECORDS: dict[str, tuple[str, bool, str]] = {
    "echo": ("msg/s", True, "/echo round trips, 50 conns pipelining 100 B"),
    "rpc": ("msg/s", True, "request/reply through /ws (send type echo)"),
    "fanout": ("deliveries/s", True, "1 publisher -> 1,000 subscribers, max rate"),
    "latency10": ("ms p99", False, "publish->delivery at 10 publishes/s x 1,000 subs"),
    "latency100": ("ms p99", False, "publish->delivery at 100 publishes/s x 1,000 subs"),
    "idle": ("KiB/conn", False, "server RSS growth per idle connection"),
    "connect": ("conn/s", True, "handshakes completed per second, 64 in flight"),
    "channels": ("deliveries/s", True, "10,000 channels x 3 subscribers, round-robin"),
}

#: the aliases accepted by --scenarios
ALIASES = {"latency": ("latency10", "latency100"), "connect": ("idle",)}


@dataclass
class Scenario:
    name: str
    loadgen: dict[str, Any] = field(default_factory=dict)
    #: a generous bound on the load generator's run time, seconds
    timeout: float = 120.0


def resolve_scenarios(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        for n in ALIASES.get(name, (name,)):
            if n not in SCENARIOS:
                known = ", ".join([*SCENARIOS, *ALIASES])
                raise ValueError(f"unknown scenario {name!r}; known: {known}")
            if n not in out:
                out.append(n)
    return out


def plan(name: str, *, quick: bool = False, big: bool = False, duration: float | None = None,
         warmup: float | None = None, overrides: dict[str, Any] | None = None) -> Scenario:
    """The load generator's parameters for one scenario."""
    dur = duration if duration is not None else (1.0 if quick else 10.0)
    warm = warmup if warmup is not None else (0.3 if quick else 2.0)
    common: dict[str, Any] = {"duration": dur, "warmup": warm}
    subs = 100 if quick else 1000
    if name in ("echo", "rpc"):
        p = {"scenario": name, "connections": 10 if quick else 50, "depth": 16, "size": 100}
    elif name == "fanout":
        p = {"scenario": "fanout", "subscribers": subs, "window": 8, "size": 100}
    elif name in ("latency10", "latency100"):
        p = {"scenario": "latency", "rate": int(name.removeprefix("latency")),
             "subscribers": subs, "size": 100}
    elif name == "idle":
        n = 500 if quick else (50_000 if big else 10_000)
        p = {"scenario": "idle", "connections": n, "concurrency": 64,
             "settle": 0.5 if quick else 2.0}
    elif name == "channels":
        p = {"scenario": "channels", "channels": 1000 if quick else 10_000,
             "per_connection": 15, "subscribers_per_channel": 3, "window_deliveries": 8000,
             "size": 100}
    else:
        raise ValueError(f"unknown scenario {name!r}")
    p = {**common, **p, **(overrides or {}).get(name, {})}
    setup = 60.0 if name in ("idle", "channels") else 30.0
    return Scenario(name, p, timeout=setup + 3 * (p["warmup"] + p["duration"]) + 30.0)

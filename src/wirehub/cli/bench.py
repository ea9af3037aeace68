"""``wirehub bench``: wirehub against Node ws and Python peers, one command."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def _default_out() -> Path:
    """bench/results in a wirehub checkout, else ./wirehub-bench."""
    return Path("bench/results") if Path("bench").is_dir() else Path("wirehub-bench")


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_parser(sub: Any) -> None:
    from ..bench.scenarios import SCENARIOS
    from ..bench.servers import SERVERS

    p = sub.add_parser(
        "bench", help="benchmark wirehub against Node ws and Python peers",
        description="Run wirehub, Node ws, aiohttp, websockets, picows and python-socketio "
        "through the same scenarios with one load generator (C, compiled on first use, or "
        "Node.js; server and load generator pinned to different cores); print a table with "
        "ratios to Node ws and write latest.json, latest.txt, latest.md and latest.png. "
        "Needs a C compiler (or node and npm for --loadgen node); node and npm for the "
        "Node ws peer.",
    )
    p.add_argument("--quick", action="store_true",
                   help="short runs with fewer connections (proves the harness; < 2 minutes)")
    p.add_argument("--big", action="store_true",
                   help="idle scenario with 50,000 connections from several 127.0.0.x "
                   "addresses (needs an open-files limit above 50,200)")
    p.add_argument("--servers", type=_list, default=list(SERVERS),
                   help=f"comma-separated (default: {','.join(SERVERS)})")
    p.add_argument("--scenarios", type=_list, default=list(SCENARIOS),
                   help=f"comma-separated, of {','.join(SCENARIOS)} (latency = latency10,"
                   "latency100; idle also measures connect) (default: all)")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for the results (default: bench/results in a checkout, "
                   "else ./wirehub-bench)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds measured per scenario (default: 10, quick: 1)")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds of load before measuring (default: 2, quick: 0.3)")
    p.add_argument("--set", action="append", default=[], metavar="SCENARIO.KEY=VALUE",
                   help="override a load generator parameter, e.g. fanout.subscribers=200 "
                   "(repeatable)")
    p.add_argument("--socketio-scenarios", type=_list, default=None,
                   help="the scenarios python-socketio runs (default: all but rpc)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="on a shared machine: before each run, wait up to SECONDS for other "
                   "programs to use under 15%% of a core (default: 0, do not wait)")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="do not pin server and load generator to cores with taskset")
    p.add_argument("--server-cpu", type=int, default=0, help="core for the server (default: 0)")
    p.add_argument("--loadgen-cpu", type=int, default=1,
                   help="core for the load generator (default: 1)")
    p.add_argument("--loadgen", choices=("c", "node"), default=None,
                   help="the load generator: c (loadgen.c, built with cc on first use) or node "
                   "(loadgen.mjs, the cross-check) (default: c when cc/gcc is found, else node)")
    p.add_argument("--no-chart", dest="chart", action="store_false", help="skip the PNG chart")
    p.add_argument("--profile", action="store_true",
                   help="instead: profile wirehub under fan-out with py-spy (fanout.svg and "
                   "fanout-top.txt in the output directory)")
    p.set_defaults(func=run)


def _overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        scen, dot, name = key.partition(".")
        if not (eq and dot and scen and name):
            raise SystemExit(f"wirehub bench: --set wants SCENARIO.KEY=VALUE, not {item!r}")
        try:
            parsed: Any = int(value)
        except ValueError:
            try:
                parsed = float(value)
            except ValueError:
                parsed = value
        out.setdefault(scen, {})[name] = parsed
    return out


def run(args: argparse.Namespace) -> int:
    from ..bench import BenchError, BenchOptions, run_bench
    from ..bench.profile import profile_fanout

    # SIGTERM unwinds like Ctrl-C, so the servers and load generator started are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = args.out or _default_out()
    overrides = _overrides(args.set)
    try:
        if args.profile:
            profile_fanout(out, quick=args.quick, pin=args.pin, overrides=overrides,
                           loadgen_kind=args.loadgen)
            return 0
        opts = BenchOptions(
            servers=args.servers, scenarios=args.scenarios, out=out, quick=args.quick,
            big=args.big, duration=args.duration, warmup=args.warmup, pin=args.pin,
            server_cpu=args.server_cpu, loadgen_cpu=args.loadgen_cpu, chart=args.chart,
            overrides=overrides, socketio_scenarios=args.socketio_scenarios,
            wait_quiet=args.wait_quiet, loadgen=args.loadgen,
            command="wirehub " + shlex.join(getattr(args, "argv", None) or sys.argv[1:]),
        )
        run_bench(opts)
    except (BenchError, ValueError) as exc:
        print(f"wirehub bench: {exc}", file=sys.stderr)
        return 2
    return 0

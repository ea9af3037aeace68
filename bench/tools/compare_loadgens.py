"""Which load generator should ``wirehub bench`` use: Node ``ws`` or a picows client?

Drives the same server (the Node ``ws`` peer, pinned to core 0) with the Node
load generator and with an equivalent picows client (uvloop), each pinned to
core 1, in two scenarios: echo (50 connections pipelining 100-byte messages)
and fan-out reception (1,000 subscribers of ``/broadcast``, one publisher, a
window of 8 broadcasts in flight). Prints the rate and the load generator's
CPU time per message: the lower, the more headroom the load generator leaves.

    .venv/bin/python bench/tools/compare_loadgens.py [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from wirehub.bench.runner import Pinning, ensure_node_deps, run_loadgen, running
from wirehub.bench.scenarios import plan
from wirehub.bench.servers import SERVERS


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# -- the picows client ---------------------------------------------------------------------
class Echo(WSListener):
    count = 0

    def __init__(self, payload: bytes, depth: int) -> None:
        self.payload, self.depth = payload, depth

    def on_ws_connected(self, transport: WSTransport) -> None:
        for _ in range(self.depth):
            transport.send(WSMsgType.TEXT, self.payload)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            Echo.count += 1
            transport.send(WSMsgType.TEXT, self.payload)


class Sub(WSListener):
    received = 0
    published = 0
    n = 1
    window = 8
    pub: WSTransport | None = None
    payload = b""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            Sub.received += 1
            if Sub.published - Sub.received / Sub.n < Sub.window:
                Sub.pump()

    @staticmethod
    def pump() -> None:
        assert Sub.pub is not None
        while Sub.published - Sub.received / Sub.n < Sub.window:
            Sub.published += 1
            Sub.pub.send(WSMsgType.TEXT, json.dumps({"t": time.monotonic(), "s": Sub.published,
                                                     "p": "x" * 60}).encode())


class Silent(WSListener):
    pass


async def picows_run(url: str, scenario: str, duration: float, warmup: float) -> dict[str, float]:
    if scenario == "echo":
        conns = [await ws_connect(lambda: Echo(b"x" * 100, 16), url + "/echo") for _ in range(50)]
        counter = lambda: Echo.count  # noqa: E731
    else:
        Sub.n = 1000
        conns = []
        for _ in range(Sub.n):
            conns.append(await ws_connect(Sub, url + "/broadcast"))
        pub_t, _ = await ws_connect(Silent, url + "/broadcast")
        Sub.pub = pub_t
        Sub.pump()
        counter = lambda: Sub.received  # noqa: E731
    await asyncio.sleep(warmup)
    c0, t0, cpu0 = counter(), time.monotonic(), cpu_ticks(os.getpid())
    await asyncio.sleep(duration)
    c1, t1, cpu1 = counter(), time.monotonic(), cpu_ticks(os.getpid())
    for t, _ in conns:
        t.disconnect()
    secs = t1 - t0
    return {"rate": (c1 - c0) / secs,
            "lg_cpu": 100 * (cpu1 - cpu0) / os.sysconf("SC_CLK_TCK") / secs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--child", nargs=2, metavar=("URL", "SCENARIO"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import uvloop

        res = uvloop.run(picows_run(*args.child, args.duration, args.warmup))
        print(json.dumps(res))
        return
    node_dir = ensure_node_deps()
    pin = Pinning.choose(True)
    rows = []
    for scen in ("echo", "fanout"):
        for gen in ("node ws", "picows"):
            with running(SERVERS["ws"], pin, node_dir / "compare.log") as server:
                if gen == "node ws":
                    p = plan(scen, duration=args.duration, warmup=args.warmup)
                    r = run_loadgen(node_dir, server, p, pin, node_dir / "compare.log")[0]
                    rate, lg = r["value"], r["lg_cpu"]
                else:
                    out = subprocess.run(
                        [*pin.prefix(pin.loadgen_cpu), sys.executable, __file__, "--duration",
                         str(args.duration), "--warmup", str(args.warmup), "--child",
                         server.url, scen], capture_output=True, text=True, timeout=120)
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    rate, lg = r["rate"], r["lg_cpu"]
            us = 1e6 * (lg / 100) / rate if rate else float("nan")
            rows.append((scen, gen, rate, lg, us))
            print(f"{scen:7} {gen:8} {rate:>10,.0f} msg/s  loadgen CPU {lg:5.1f}%  "
                  f"{us:6.2f} us of loadgen CPU per message", flush=True)
    (node_dir / "compare.log").unlink(missing_ok=True)


if __name__ == "__main__":
    main()

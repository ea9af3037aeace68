"""What does this machine allow at all? The latency and fan-out floor of a C server.

Builds ``floor_server.c`` (the cheapest ``/broadcast`` server: C, epoll, one
``send()`` per delivery, nothing else) with ``cc -O2``, pins it to core 0 and
the C load generator of ``wirehub bench`` to core 1, and runs the benchmark's
``latency10``, ``latency100`` and ``fanout`` scenarios against it (1,000
subscribers). Compare with the rows of ``wirehub bench``: no Python server can
go below what this one measures on the same machine (docs/performance.md).

    .venv/bin/python bench/tools/floor_probe.py [--duration 10] [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from wirehub.bench.runner import (
    Pinning,
    ServerProcess,
    build_c_loadgen,
    c_compiler,
    free_port,
    run_loadgen,
)
from wirehub.bench.scenarios import plan
from wirehub.bench.servers import ServerSpec

HERE = Path(__file__).resolve().parent


class _FloorSpec(ServerSpec):
    def command(self, port: int) -> list[str]:  # pragma: no cover - not started by the harness
        raise NotImplementedError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    cc = c_compiler()
    if cc is None:
        print("needs a C compiler (cc or gcc)", file=sys.stderr)
        return 1
    pinning = Pinning.choose(True)
    loadgen = build_c_loadgen()
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "floor_server"
        subprocess.run([cc, "-O2", "-o", str(exe), str(HERE / "floor_server.c")], check=True)
        for _ in range(args.runs):
            for name in ("latency10", "latency100", "fanout"):
                port = free_port()
                proc = subprocess.Popen([*pinning.prefix(pinning.server_cpu), str(exe), str(port)],
                                        stdout=subprocess.PIPE)
                try:
                    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
                    log = open(Path(tmp) / "server.log", "ab")  # noqa: SIM115 (closed by stop)
                    server = ServerProcess(_FloorSpec("floor", "C floor", "raw"), proc, port, log)
                    scenario = plan(name, duration=args.duration)
                    (r,) = run_loadgen(_c(loadgen), server, scenario, pinning,
                                       Path(tmp) / "loadgen.log")
                finally:
                    proc.terminate()
                    proc.wait(10)
                    log.close()
                if name == "fanout":
                    figure = f"{r['value']:,.0f} deliveries/s"
                else:
                    figure = (f"p50 {r['p50_ms']:.2f} / p99 {r['p99_ms']:.2f} / "
                              f"p999 {r['p999_ms']:.2f} ms at {r['rate']} publishes/s x 1,000")
                print(f"C floor server  {name:<10}  {figure}  server CPU {r['server_cpu']}% "
                      f"(kernel {r['server_sys_cpu']}%), load generator CPU {r['lg_cpu']}%")
    print(f"({pinning.describe})")
    return 0


def _c(exe: Path):  # type: ignore[no-untyped-def]
    from wirehub.bench.runner import Loadgen

    return Loadgen("c", (str(exe),))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

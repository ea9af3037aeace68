"""What would a WebSocket path without aiohttp under it cost: memory and echo speed?

Starts a minimal server in a child process: one uvloop ``asyncio.Protocol``
per connection driving the websockets library's sans-I/O ``ServerProtocol``
(handshake, a welcome text frame, then every text or binary message echoed,
a read's echoes gathered into one ``transport.write`` as wirehub does).

* idle: opens N connections, with the handshake and the welcome read, and
  prints the growth of the server's VmRSS per connection; compare with the
  ``idle`` row of ``wirehub bench`` (wirehub on aiohttp, the aiohttp peer);
* echo: the server pinned to core 0, the C load generator of ``wirehub
  bench`` pinned to core 1 (50 connections x 16 messages of 100 bytes in
  flight): round trips/s and CPU; compare with the ``echo`` rows.

The difference is what a transport that skips aiohttp for WebSocket upgrades
would save and cost (docs/performance.md, "Latest results").

    .venv/bin/python bench/tools/lean_probe.py [--connections 8000] [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
from typing import cast

import aiohttp

from wirehub.bench.runner import Pinning, build_c_loadgen, free_port, raise_fd_limit


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def serve(port: int) -> None:
    """The child: the lean server, until stdin closes."""
    import uvloop
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Request
    from websockets.server import ServerProtocol

    class Lean(asyncio.Protocol):
        __slots__ = ("transport", "ws")

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport
            self.ws = ServerProtocol()

        def data_received(self, data: bytes) -> None:
            ws = self.ws
            ws.receive_data(data)
            echoes = []
            for event in ws.events_received():
                if isinstance(event, Request):
                    ws.send_response(ws.accept(event))
                    if event.path == "/ws":
                        ws.send_text(b'{"op":"welcome"}')
                elif event.opcode is Opcode.TEXT or event.opcode is Opcode.BINARY:
                    echoes.append(Frame(event.opcode, event.data)
                                  .serialize(mask=False, extensions=[]))
            chunks = [c for c in ws.data_to_send() if c] + echoes
            if chunks:
                self.transport.write(b"".join(chunks))
            if ws.close_expected():
                self.transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Lean, "127.0.0.1", port, backlog=4096)
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
        server.close()

    uvloop.run(main())


async def hold(url: str, n: int, pid: int) -> tuple[int, int, int]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        gc.collect()
        before = rss_kib(pid)
        gate = asyncio.Semaphore(64)
        sockets: list[aiohttp.ClientWebSocketResponse] = []

        async def one() -> None:
            async with gate:
                ws = await session.ws_connect(url, autoping=False)
                await asyncio.wait_for(ws.receive(), 30)  # the welcome
                sockets.append(ws)

        await asyncio.gather(*(one() for _ in range(n)))
        await asyncio.sleep(1)  # let the server settle after the last handshake
        after = rss_kib(pid)
        for ws in sockets:
            await ws.close()
        return before, after, len(sockets)


def start(pinning: Pinning) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    child = subprocess.Popen([*pinning.prefix(pinning.server_cpu), sys.executable, __file__,
                              "--serve", str(port)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child, port


def stop(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    child.wait(30)


def echo(pinning: Pinning, duration: float) -> dict[str, float]:
    child, port = start(pinning)
    try:
        cfg = {"kind": "raw", "url": f"ws://127.0.0.1:{port}", "scenario": "echo",
               "connections": 50, "depth": 16, "size": 100, "duration": duration,
               "warmup": 1.0, "server_pid": child.pid, "clk_tck": os.sysconf("SC_CLK_TCK"),
               "timeout": duration + 60}
        out = subprocess.run([*pinning.prefix(pinning.loadgen_cpu), str(build_c_loadgen()),
                              json.dumps(cfg)], capture_output=True, text=True, check=True,
                             timeout=duration + 90).stdout
    finally:
        stop(child)
    return json.loads(out)["results"][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=8000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    soft, _ = raise_fd_limit()
    n = min(args.connections, soft // 2 - 100)
    pinning = Pinning.choose(True)
    child, port = start(Pinning.choose(False))
    try:
        before, after, opened = asyncio.run(hold(f"ws://127.0.0.1:{port}/ws", n, child.pid))
    finally:
        stop(child)
    print(f"lean server (uvloop Protocol + websockets sans-I/O ServerProtocol): "
          f"idle {(after - before) / opened:.1f} KiB/conn over {opened} connections "
          f"(VmRSS {before} -> {after} KiB)")
    r = echo(pinning, args.duration)
    print(f"lean server: echo {r['value']:,.0f} round trips/s, server CPU {r['server_cpu']}% "
          f"(kernel {r['server_sys_cpu']}%), load generator CPU {r['lg_cpu']}% "
          f"({pinning.describe})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

"""How much memory would an idle WebSocket cost without aiohttp under it?

Starts a minimal server in a child process: one uvloop ``asyncio.Protocol``
per connection driving the websockets library's sans-I/O ``ServerProtocol``
(handshake, then one welcome text frame, then nothing). Opens N connections
to it, with the handshake and the welcome read, and prints the growth of the
server's VmRSS per connection. Compare with the ``idle`` row of
``wirehub bench`` (wirehub on aiohttp, and the aiohttp peer alone): the
difference is what a transport that skips aiohttp for WebSocket upgrades
could save (docs/performance.md, "Latest results").

    .venv/bin/python bench/tools/lean_idle_memory.py [--connections 8000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
from typing import cast

import aiohttp

from wirehub.bench.runner import free_port, raise_fd_limit


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def serve(port: int) -> None:
    """The child: the lean server, until stdin closes."""
    import uvloop
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
            for event in ws.events_received():
                if isinstance(event, Request):
                    ws.send_response(ws.accept(event))
                    ws.send_text(b'{"op":"welcome"}')
            for chunk in ws.data_to_send():
                if chunk:
                    self.transport.write(chunk)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=8000)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    soft, _ = raise_fd_limit()
    n = min(args.connections, soft // 2 - 100)
    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        before, after, opened = asyncio.run(hold(f"ws://127.0.0.1:{port}/ws", n, child.pid))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
    print(f"lean server (uvloop Protocol + websockets sans-I/O ServerProtocol): "
          f"{(after - before) / opened:.1f} KiB/conn over {opened} idle connections "
          f"(VmRSS {before} -> {after} KiB)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

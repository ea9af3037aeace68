"""The servers ``wirehub bench`` measures, and how to start each one.

Every server is a separate process on 127.0.0.1, started fresh and pinned to
its own core; one load generator (``loadgen/loadgen.c``, or ``node/loadgen.mjs``
with ``--loadgen node``) drives them all with the same code. ``kind`` tells the
load generator how to talk to it:

* ``wirehub``: ``/echo`` and ``/ws`` (protocol v1, docs/protocol.md);
* ``raw``: the peers' ``/echo``, ``/broadcast`` and ``/pubsub`` (see :mod:`.peers`);
* ``socketio``: python-socketio events (Socket.IO over the WebSocket transport).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NODE_DIR", "SERVERS", "ServerSpec", "wirehub_command"]

NODE_DIR = Path(__file__).resolve().parent / "node"

#: the limits of ``wirehub serve`` lifted for benchmarking: its per-connection
#: rate limits (200 messages/s, 2 MiB/s by default) would otherwise throttle the
#: load generator, and the connection limits would refuse the idle scenario.
WIREHUB_BENCH_FLAGS = (
    "--log-level", "warning",
    "--ping-interval", "0",
    "--max-connections", "1000000",
    "--max-connections-per-ip", "1000000",
    "--max-messages-per-second", "1000000",
    "--max-bytes-per-second", "1000000000",
)


def wirehub_command(port: int, transport: str = "lean") -> list[str]:
    """``python -m wirehub serve`` with the echo app and the benchmark flags."""
    return [sys.executable, "-m", "wirehub", "serve", "wirehub.apps:echo_app",
            "--host", "127.0.0.1", "--port", str(port), "--transport", transport,
            *WIREHUB_BENCH_FLAGS]


def _python_peer(module: str, port: int) -> list[str]:
    return [sys.executable, "-m", f"wirehub.bench.peers.{module}", "--port", str(port)]


@dataclass(frozen=True)
class ServerSpec:
    name: str
    label: str
    kind: str
    #: Python module the server needs (None: none beyond wirehub's own)
    needs_module: str | None = None
    needs_node: bool = False

    def command(self, port: int) -> list[str]:
        if self.name == "wirehub":
            return wirehub_command(port)
        if self.name == "wirehub-aiohttp":
            return wirehub_command(port, "aiohttp")
        if self.name == "ws":
            return [node_executable() or "node", str(NODE_DIR / "ws_peer.mjs"), str(port)]
        return _python_peer(f"{self.name}_peer", port)

    def missing(self) -> str | None:
        """Why this server cannot run here, or None."""
        if self.needs_node and node_executable() is None:
            return "node is not installed"
        if self.needs_module and importlib.util.find_spec(self.needs_module) is None:
            return (f"Python package {self.needs_module} is not installed "
                    "(pip install 'wirehub[bench]')")
        return None


def node_executable() -> str | None:
    return os.environ.get("WIREHUB_BENCH_NODE") or shutil.which("node")


SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in (
        ServerSpec("wirehub", "wirehub", "wirehub"),
        ServerSpec("wirehub-aiohttp", "wirehub aiohttp", "wirehub"),
        ServerSpec("ws", "Node ws", "raw", needs_node=True),
        ServerSpec("aiohttp", "aiohttp", "raw", "aiohttp"),
        ServerSpec("websockets", "websockets", "raw", "websockets"),
        ServerSpec("picows", "picows", "raw", "picows"),
        ServerSpec("socketio", "python-socketio", "socketio", "socketio"),
    )
}

#: the reference every ratio is taken against
BASELINE = "ws"

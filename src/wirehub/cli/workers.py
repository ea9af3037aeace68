"""``wirehub serve --workers N``: N processes on one port, joined by the broker.

The parent binds the port first (so ``--port 0`` resolves to one port for
all), starts N ``wirehub serve`` children with SO_REUSEPORT (the kernel
spreads connections over them), forwards SIGTERM/SIGINT, and exits 0 when
every child exited 0. Workers share nothing in memory, so channels, history
and presence must live in a shared broker: the memory broker is refused.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from types import FrameType

from ..config import ServerConfig
from .serve import say

__all__ = ["run_workers"]


def run_workers(argv: list[str], config: ServerConfig) -> int:
    if config.broker in ("", "memory", "memory://"):
        print(f"wirehub: --workers {config.workers} needs a shared broker: each worker would "
              "have its own in-memory channels. Use --broker redis://HOST:PORT/DB.",
              file=sys.stderr)
        return 2
    holder = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((config.host, config.port))
    port = holder.getsockname()[1]
    base = config.node_name or f"{socket.gethostname()}-{port}"
    children: list[subprocess.Popen[bytes]] = []
    received: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    # Before the first child starts: a SIGTERM during start-up must not kill this
    # process with its default action and leave the workers running, orphaned.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for i in range(config.workers):
        children.append(subprocess.Popen(
            [sys.executable, "-m", "wirehub", *argv, "--port", str(port),
             "--workers", "1", "--reuse-port", "--node-name", f"{base}-w{i}"]))
    if received:  # a signal came while they started: the later ones get it too
        forward(received[-1], None)
    say(f"wirehub: {config.workers} workers on port {port} (pids "
        f"{' '.join(str(c.pid) for c in children)})")
    codes = [child.wait() for child in children]
    holder.close()
    return 0 if all(code == 0 for code in codes) else 1

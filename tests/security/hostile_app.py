"""The app the hostile-input tests serve in a subprocess: echo, plus a server-side task that
publishes {"n": 1, 2, ...} to `feed:ticks` every few milliseconds for a bystander to watch.

    wirehub serve tests/security/hostile_app.py:app
"""

from __future__ import annotations

import asyncio
import contextlib

from wirehub import App
from wirehub.apps import echo_app

FEED = "feed:ticks"
INTERVAL = 0.005

app = App("hostile").include(echo_app())
app.namespace("feed", publish="server", history_size=10)
_tasks: set[asyncio.Task[None]] = set()


async def _feed() -> None:
    n = 0
    while True:
        n += 1
        await app.publish(FEED, {"n": n})
        await asyncio.sleep(INTERVAL)


@app.on_startup
async def _start(_app: App) -> None:
    _tasks.add(asyncio.ensure_future(_feed()))


@app.on_shutdown
async def _stop(_app: App) -> None:
    for task in _tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""The python-socketio peer: an ``AsyncServer`` on aiohttp with events and rooms.

Socket.IO is its own protocol on top of WebSocket (Engine.IO packets), so the
load generator talks to it with the npm ``socket.io-client`` (WebSocket
transport only). Events: ``echo`` (sent back to the sender), ``publish``
(broadcast to every other client: ``skip_sid``), ``subscribe`` (join a room,
acknowledged), ``publish_to`` (emit to a room).
"""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp import web

from ._common import parse_port, run_forever


def make_app() -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=3600, ping_timeout=3600)

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> None:
        await sio.emit("echo", data, to=sid)

    @sio.on("publish")
    async def publish(sid: str, data: Any) -> None:
        await sio.emit("message", data, skip_sid=sid)

    @sio.on("subscribe")
    async def subscribe(sid: str, channel: str) -> str:
        await sio.enter_room(sid, channel)
        return channel  # the acknowledgement

    @sio.on("publish_to")
    async def publish_to(sid: str, channel: str, data: Any) -> None:
        await sio.emit("message", data, room=channel)

    app = web.Application()
    sio.attach(app)
    return app


def main() -> None:
    port = parse_port("python-socketio peer for wirehub bench")

    async def start() -> web.AppRunner:
        runner = web.AppRunner(make_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    run_forever(start)


if __name__ == "__main__":
    main()

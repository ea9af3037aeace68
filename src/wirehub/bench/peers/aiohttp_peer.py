"""The aiohttp peer: ``web.WebSocketResponse`` handlers, as in aiohttp's docs."""

from __future__ import annotations

import json

from aiohttp import WSMsgType, web

from ._common import parse_port, run_forever

BROADCAST = web.AppKey("broadcast", set[web.WebSocketResponse])
CHANNELS = web.AppKey("channels", dict[str, set[web.WebSocketResponse]])


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def broadcast(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    clients = request.app[BROADCAST]
    clients.add(ws)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                for other in list(clients):
                    if other is not ws:
                        await other.send_str(msg.data)
    finally:
        clients.discard(ws)
    return ws


async def pubsub(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    channels = request.app[CHANNELS]
    mine: set[str] = set()
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            channel = frame["channel"]
            if frame["op"] == "subscribe":
                channels.setdefault(channel, set()).add(ws)
                mine.add(channel)
                await ws.send_str(json.dumps({"op": "subscribed", "channel": channel}))
            elif frame["op"] == "publish":
                for sub in list(channels.get(channel, ())):
                    await sub.send_str(msg.data)
    finally:
        for channel in mine:
            channels[channel].discard(ws)
    return ws


def make_app() -> web.Application:
    app = web.Application()
    app[BROADCAST] = set()
    app[CHANNELS] = {}
    app.router.add_get("/echo", echo)
    app.router.add_get("/broadcast", broadcast)
    app.router.add_get("/pubsub", pubsub)
    return app


def main() -> None:
    port = parse_port("aiohttp peer for wirehub bench")

    async def start() -> web.AppRunner:
        runner = web.AppRunner(make_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    run_forever(start)


if __name__ == "__main__":
    main()

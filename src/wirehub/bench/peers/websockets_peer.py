"""The websockets peer: the asyncio API with ``websockets.broadcast``, as in its docs."""

from __future__ import annotations

import json

from websockets.asyncio.server import ServerConnection, broadcast, serve

from ._common import parse_port, run_forever

BROADCAST: set[ServerConnection] = set()
CHANNELS: dict[str, set[ServerConnection]] = {}


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def fan_out(ws: ServerConnection) -> None:
    BROADCAST.add(ws)
    try:
        async for message in ws:
            broadcast(BROADCAST - {ws}, message)
    finally:
        BROADCAST.discard(ws)


async def pubsub(ws: ServerConnection) -> None:
    mine: set[str] = set()
    try:
        async for message in ws:
            frame = json.loads(message)
            channel = frame["channel"]
            if frame["op"] == "subscribe":
                CHANNELS.setdefault(channel, set()).add(ws)
                mine.add(channel)
                await ws.send(json.dumps({"op": "subscribed", "channel": channel}))
            elif frame["op"] == "publish":
                broadcast(CHANNELS.get(channel, ()), message)
    finally:
        for channel in mine:
            CHANNELS[channel].discard(ws)


ROUTES = {"/echo": echo, "/broadcast": fan_out, "/pubsub": pubsub}


async def handler(ws: ServerConnection) -> None:
    route = ROUTES.get(ws.request.path if ws.request else "")
    if route is None:
        await ws.close(1008, "unknown path")
        return
    await route(ws)


def main() -> None:
    port = parse_port("websockets peer for wirehub bench")
    # compression=None: the load generator never offers permessage-deflate anyway
    run_forever(lambda: serve(handler, "127.0.0.1", port, compression=None,
                              ping_interval=None))


if __name__ == "__main__":
    main()

"""The picows peer: ``WSListener`` callbacks, as in picows' docs (no asyncio streams)."""

from __future__ import annotations

import json

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from ._common import parse_port, run_forever

BROADCAST: set[WSTransport] = set()
CHANNELS: dict[str, set[WSTransport]] = {}


class _Base(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.TEXT or frame.msg_type == WSMsgType.BINARY:
            self.on_message(transport, frame)

    def on_message(self, transport: WSTransport, frame: WSFrame) -> None:
        raise NotImplementedError


class Echo(_Base):
    def on_message(self, transport: WSTransport, frame: WSFrame) -> None:
        transport.send(frame.msg_type, frame.get_payload_as_memoryview())


class Broadcast(_Base):
    def on_ws_connected(self, transport: WSTransport) -> None:
        BROADCAST.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        BROADCAST.discard(transport)

    def on_message(self, transport: WSTransport, frame: WSFrame) -> None:
        payload = frame.get_payload_as_bytes()
        for other in BROADCAST:
            if other is not transport:
                other.send(WSMsgType.TEXT, payload)


class PubSub(_Base):
    def __init__(self) -> None:
        self.channels: set[str] = set()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for channel in self.channels:
            CHANNELS[channel].discard(transport)

    def on_message(self, transport: WSTransport, frame: WSFrame) -> None:
        payload = frame.get_payload_as_bytes()
        msg = json.loads(payload)
        channel = msg["channel"]
        if msg["op"] == "subscribe":
            CHANNELS.setdefault(channel, set()).add(transport)
            self.channels.add(channel)
            transport.send(WSMsgType.TEXT,
                           json.dumps({"op": "subscribed", "channel": channel}).encode())
        elif msg["op"] == "publish":
            for sub in CHANNELS.get(channel, ()):
                sub.send(WSMsgType.TEXT, payload)


ROUTES = {"/echo": Echo, "/broadcast": Broadcast, "/pubsub": PubSub}


def listener_for(request: WSUpgradeRequest) -> WSListener | None:
    path = request.path
    if isinstance(path, bytes):
        path = path.decode()
    route = ROUTES.get(path)
    return route() if route is not None else None  # None: picows answers 404


def main() -> None:
    port = parse_port("picows peer for wirehub bench")
    run_forever(lambda: ws_create_server(listener_for, "127.0.0.1", port))


if __name__ == "__main__":
    main()

"""Mount the hub in an ASGI application (Starlette, FastAPI): ``wirehub.asgi``.

The Python counterpart of attaching Node's ``ws`` to an Express server::

    from fastapi import FastAPI
    from starlette.routing import WebSocketRoute
    import wirehub
    from wirehub.asgi import WirehubASGI

    hub = WirehubASGI(wirehub.App())
    app = FastAPI(lifespan=hub.lifespan)
    app.router.routes.append(WebSocketRoute("/ws", hub))   # ws://HOST/ws

    @app.post("/notify")
    async def notify(text: str):
        pub = await hub.publish("news", {"text": text})
        return {"offset": pub.offset}

The ASGI server (uvicorn, hypercorn) does the WebSocket framing and its own
keepalive pings, so wirehub's ping interval defaults to 0 here; everything
else (auth, permissions, limits, recovery, presence, the brokers) is the same
as ``wirehub serve``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType
from multidict import CIMultiDict, MultiDict

from .app import App
from .brokers import Publication
from .config import ServerConfig
from .core.codec import CODECS, JSON
from .core.codes import CloseCode
from .node import Node
from .transport.admission import Refused
from .transport.session import Sessions

__all__ = ["WirehubASGI"]

log = logging.getLogger("wirehub.asgi")

Scope = dict[str, Any]


class _Request:
    """What admission and connections read from a request, taken from an ASGI scope."""

    transport = None

    def __init__(self, scope: Scope) -> None:
        self.headers = CIMultiDict((k.decode("latin-1"), v.decode("latin-1"))
                                   for k, v in scope.get("headers", []))
        client = scope.get("client")
        self.remote = client[0] if client else ""
        self.secure = scope.get("scheme") in ("wss", "https")
        self.host = self.headers.get("Host", "")
        self.query = MultiDict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


class _Sink:
    """Connection's outbound side over ASGI ``send``."""

    def __init__(self, send: Any) -> None:
        self._send = send
        self.closed = False

    async def send_frame(self, payload: bytes, opcode: WSMsgType) -> None:
        if opcode is WSMsgType.TEXT:
            message = {"type": "websocket.send", "text": payload.decode()}
        elif opcode is WSMsgType.BINARY:
            message = {"type": "websocket.send", "bytes": payload}
        else:
            return  # pings and pongs are the ASGI server's business
        try:
            await self._send(message)
        except Exception as exc:  # the ASGI server's "client went away" exceptions
            raise ConnectionError(str(exc)) from exc

    async def close(self, *, code: int, message: bytes = b"") -> bool:
        if self.closed:
            return False
        self.closed = True
        with contextlib.suppress(Exception):
            await self._send({"type": "websocket.close", "code": code,
                              "reason": message.decode(errors="replace")})
        return True


class WirehubASGI:
    """An ASGI app serving protocol v1 on every WebSocket it is given."""

    def __init__(self, app: App, config: ServerConfig | None = None) -> None:
        config = config or replace(ServerConfig(), ping_interval=0.0)
        self.config = config
        self.node = Node.from_config(app, config)
        self.sessions = Sessions(self.node, config)
        self._started = False

    async def startup(self) -> None:
        if not self._started:
            self._started = True
            await self.sessions.start()

    async def shutdown(self) -> None:
        if self._started:
            self._started = False
            await self.sessions.stop()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        """For ``FastAPI(lifespan=hub.lifespan)`` / ``Starlette(lifespan=...)``."""
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def publish(self, channel: str, data: Any) -> Publication:
        """Publish from server code (``from`` is null), e.g. in an HTTP route."""
        return await self.node.publish(channel, data)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body",
                        "body": b"wirehub: connect with a WebSocket\n"})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _websocket(self, scope: Scope, receive: Any, send: Any) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        if not self._started:
            await self.startup()  # mounted without a lifespan: start on first use
        sessions = self.sessions
        offered = list(scope.get("subprotocols") or [])
        request = _Request(scope)
        if not sessions.accepting or (offered and not any(p in CODECS for p in offered)):
            await send({"type": "websocket.close", "code": 1008 if offered else 1001})
            return
        try:
            identity = sessions.admission.check(request)  # type: ignore[arg-type]
        except Refused as exc:
            log.info("refused %s: HTTP %d", request.remote, exc.response.status)
            await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})
            return
        chosen = next((p for p in offered if p in CODECS), None)
        await send({"type": "websocket.accept", "subprotocol": chosen})
        sink = _Sink(send)
        conn = sessions.open_connection(sink, request, CODECS.get(chosen or "", JSON), identity)
        code: int | None = None
        try:
            await self.node.connected(conn)
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    text = message.get("text")
                    data = text if text is not None else message.get("bytes") or b""
                    if not await sessions.on_data(conn, data, text is None):
                        break
                elif message["type"] == "websocket.disconnect":
                    code = message.get("code", CloseCode.NO_STATUS)
                    conn.close_code = code
                    break
        finally:
            if code is None and not sink.closed:
                await conn.close(CloseCode.NORMAL)
            await sessions.close_connection(conn, request, code)

"""The aiohttp server: HTTP and WebSocket on one port.

Routes: ``GET /healthz``, ``/echo`` (plain RFC 6455 echo), ``/ws`` (protocol
v1). Framing, masking, fragmentation, UTF-8 checks and permessage-deflate are
aiohttp's; this module decides what to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..core.codec import CODECS, JSON
from ..core.codes import CloseCode, valid_close_code
from ..logs import quiet_bad_requests
from ..metrics import Collector
from ..node import Node
from .admin import Admin
from .admission import Refused
from .api import add_api_routes
from .coalesce import EchoGatherer
from .connection import Connection
from .session import Sessions

__all__ = ["WirehubServer", "valid_close_code"]

log = logging.getLogger("wirehub.server")

NODE_KEY: web.AppKey[WirehubServer] = web.AppKey("wirehub_server")
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


async def _no_cache_static(request: web.Request, response: web.StreamResponse) -> None:
    """Page modules import each other by path: revalidate them so an upgrade is seen."""
    # not for a WebSocket: request.path would stay cached on every connection
    if not isinstance(response, web.WebSocketResponse) and request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"


def _not_an_upgrade(request: web.Request) -> web.Response | None:
    """A plain HTTP request on a WebSocket path: say what is missing (often a proxy)."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    log.info("plain HTTP request on %s from %s without 'Upgrade: websocket' (a proxy that "
             "drops the Upgrade and Connection headers?)", request.path, request.remote)
    return web.Response(
        status=426, headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        text=f"{request.path} is a WebSocket endpoint, but this request has no "
        "'Upgrade: websocket' header. If you went through a proxy, it must pass the "
        "Upgrade and Connection headers on (nginx: proxy_http_version 1.1; proxy_set_header "
        "Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\"). See "
        "docs/debugging.md.\n")


def _offered_subprotocols(request: web.Request) -> list[str]:
    offered: list[str] = []
    for value in request.headers.getall("Sec-WebSocket-Protocol", []):
        offered += [p.strip() for p in value.split(",") if p.strip()]
    return offered



class _EchoSocket(web.WebSocketResponse):
    """``/echo``'s socket: echoes gathered this loop turn go out before a close frame.

    aiohttp sends a close frame itself (inside ``receive``) when the peer breaks
    the protocol; the echoes of the messages before it must precede it.
    """

    out: EchoGatherer | None = None

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if self.out is not None:
            self.out.flush()
        return await super().close(code=code, message=message, drain=drain)

class WirehubServer(Sessions):
    """The aiohttp application around the node's :class:`Sessions`."""

    def __init__(self, node: Node, config: Any) -> None:
        super().__init__(node, config)
        quiet_bad_requests()  # a malformed request is one INFO line, not an ERROR traceback
        #: open /echo sockets (aiohttp responses or lean sockets), closed on drain
        self.echo_sockets: set[Any] = set()
        self._closers.append(self._close_echo_sockets)
        self.app = web.Application()
        self.app[NODE_KEY] = self
        add_api_routes(self)
        self.app.on_response_prepare.append(_no_cache_static)
        self.app.on_startup.append(self._on_startup)
        self.app.on_shutdown.append(self._on_shutdown)
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/echo", self.echo)
        self.app.router.add_get("/ws", self.websocket)
        self.app.router.add_get("/", self.index)
        if config.metrics:
            self.registry = CollectorRegistry(auto_describe=False)
            self.registry.register(Collector(self))
            self.app.router.add_get("/metrics", self.metrics)
        if config.admin_token:
            Admin(self).mount()
        self.app.router.add_static("/static/", STATIC_DIR, append_version=False)

    async def _on_startup(self, _app: web.Application) -> None:
        await self.start()

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.stop()

    async def _close_echo_sockets(self, code: int, reason: str) -> None:
        await asyncio.gather(*(ws.close(code=code, message=reason.encode())
                               for ws in list(self.echo_sockets)), return_exceptions=True)

    # -- HTTP ------------------------------------------------------------------------------
    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok" if self.node.broker.healthy else "degraded",
                "node": self.node.name,
                "uptime": round(self.node.uptime, 3),
                "connections": len(self.connections),
                "broker": {"healthy": self.node.broker.healthy},
            }
        )

    async def metrics(self, _request: web.Request) -> web.Response:
        """Prometheus text exposition (wirehub.metrics)."""
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def index(self, _request: web.Request) -> web.StreamResponse:
        """The browser page (chat, stocks, connection state): no build step."""
        return web.FileResponse(STATIC_DIR / "index.html",
                                headers={"Cache-Control": "no-cache"})

    def refuse_if_draining(self) -> web.Response | None:
        if self.accepting:
            return None
        return web.Response(status=503, text="server is shutting down\n",
                            headers={"Retry-After": "1"})

    # -- /echo ---------------------------------------------------------------------------------
    async def echo(self, request: web.Request) -> web.StreamResponse:
        """Echo every text and binary message back unchanged."""
        refused = self.refuse_if_draining() or _not_an_upgrade(request)
        if refused is not None:
            return refused
        try:  # Origin and connection limits; /echo takes no token
            self.admission.check(request, token=False)
        except Refused as exc:
            return exc.response
        ws = _EchoSocket(
            autoclose=False,
            max_msg_size=self.config.echo_max_message_size,
            compress=self.config.compression,
            timeout=2.0,
        )
        await ws.prepare(request)
        self.echo_sockets.add(ws)
        self.admission.admitted(request)
        # fast path: a loop turn's echoes go out in one write (not with permessage-deflate)
        out = ws.out = EchoGatherer(None if ws.compress else request.transport)
        try:
            while True:
                msg = await ws.receive()
                mtype = msg.type
                if mtype is WSMsgType.TEXT or mtype is WSMsgType.BINARY:
                    binary = mtype is WSMsgType.BINARY
                    data = msg.data if binary else msg.data.encode()
                    if not out.send(data, binary):  # backed up: in order, waiting to drain
                        out.flush()
                        await (ws.send_bytes(data) if binary else ws.send_str(msg.data))
                elif mtype is WSMsgType.CLOSE:
                    out.flush()
                    await self._answer_close(ws, msg.data)
                    break
                else:  # CLOSING, CLOSED, ERROR: aiohttp already closed with its code
                    break
        except ConnectionError:
            pass
        finally:
            self.echo_sockets.discard(ws)
            self.admission.released(request)
        return ws

    @staticmethod
    async def _answer_close(ws: web.WebSocketResponse, code: int | None) -> None:
        """Answer a close frame: echo a valid code, 1002 for one never allowed on the wire."""
        if code in (None, 0, CloseCode.NO_STATUS):
            reply = CloseCode.NORMAL  # RFC 6455 §7.4.1: 1005 means "no code was given"
        elif valid_close_code(code):
            reply = code
        else:
            reply = CloseCode.PROTOCOL_ERROR
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=int(reply))

    # -- /ws --------------------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """Protocol v1: welcome, then requests in and replies and pushes out."""
        refused = self.refuse_if_draining() or _not_an_upgrade(request)
        if refused is not None:
            return refused
        offered = _offered_subprotocols(request)
        if offered and not any(p in CODECS for p in offered):
            return web.Response(
                status=400,
                text=f"unsupported subprotocol {', '.join(offered)}; "
                f"supported: {', '.join(CODECS)}\n",
            )
        try:
            identity = self.admission.check(request)
        except Refused as exc:
            return exc.response
        ws = web.WebSocketResponse(
            protocols=list(CODECS),
            autoclose=False,
            autoping=False,
            # aiohttp refuses an uncompressed frame of exactly max_msg_size bytes but
            # a deflated one only past it: give it one more byte, check exactly below.
            max_msg_size=self.config.max_message_size + 1,
            compress=self.config.compression,
            timeout=2.0,
        )
        await ws.prepare(request)
        codec = CODECS.get(ws.ws_protocol or "", JSON)
        conn = self.open_connection(ws, request, codec, identity)
        try:
            await self.node.connected(conn)
            await self._read_loop(ws, conn)
        finally:
            await self.close_connection(conn, request, ws.close_code)
        return ws

    async def _read_loop(self, ws: web.WebSocketResponse, conn: Connection) -> None:
        debug = log.isEnabledFor(logging.DEBUG)
        on_data = self.on_data
        while True:
            msg = await ws.receive()
            mtype = msg.type
            if debug:
                log.debug("frame in: %s, %s", mtype.name.lower(),
                          f"{len(msg.data)} bytes: {msg.data[:80]!r}"
                          if isinstance(msg.data, bytes | str) else msg.data)
            if mtype is WSMsgType.TEXT or mtype is WSMsgType.BINARY:
                if not await on_data(conn, msg.data, mtype is WSMsgType.BINARY):
                    return
            elif mtype is WSMsgType.PING:
                conn.send_control(WSMsgType.PONG, msg.data)  # RFC 6455 §5.5.3
            elif mtype is WSMsgType.PONG:
                conn.ping_sent_at = None
            elif mtype is WSMsgType.CLOSE:
                code = msg.data or CloseCode.NO_STATUS
                # what a peer may not send is recorded as the 1002 it gets back
                conn.close_code = code if code == CloseCode.NO_STATUS or valid_close_code(code) \
                    else CloseCode.PROTOCOL_ERROR
                await conn.finish_sending(timeout=1.0)  # replies already queued still go
                await self._answer_close(ws, msg.data)
                return
            else:  # CLOSING, CLOSED or ERROR (aiohttp closed with 1002/1007/1009)
                if mtype is WSMsgType.ERROR:
                    log.info("client %s: protocol error: %s", conn.client_id, msg.data)
                return

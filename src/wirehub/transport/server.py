"""The aiohttp server: HTTP and WebSocket on one port.

Routes: ``GET /healthz``, ``/echo`` (plain RFC 6455 echo), ``/ws`` (protocol
v1). Framing, masking, fragmentation, UTF-8 checks and permessage-deflate are
aiohttp's; this module decides what to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..core.codec import CODECS, JSON
from ..core.codes import CloseCode, ErrorCode
from ..core.envelope import PROTOCOL, AuthWelcome, Error, RefreshRequest, Welcome
from ..exceptions import BrokerError, RequestError
from ..limits import TokenBucket, json_depth_exceeds
from ..logs import client_id_var
from ..metrics import Collector
from ..node import Node
from .admission import Admission, Refused
from .api import add_api_routes
from .connection import Connection

__all__ = ["WirehubServer", "valid_close_code"]

log = logging.getLogger("wirehub.server")

NODE_KEY: web.AppKey[WirehubServer] = web.AppKey("wirehub_server")
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def valid_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame (RFC 6455 §7.4.1, §7.4.2)."""
    if 3000 <= code <= 4999:
        return True
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)


async def _no_cache_static(request: web.Request, response: web.StreamResponse) -> None:
    """Page modules import each other by path: revalidate them so an upgrade is seen."""
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"


def _offered_subprotocols(request: web.Request) -> list[str]:
    offered: list[str] = []
    for value in request.headers.getall("Sec-WebSocket-Protocol", []):
        offered += [p.strip() for p in value.split(",") if p.strip()]
    return offered


class WirehubServer:
    """Owns the aiohttp application, the node, and every live connection."""

    def __init__(self, node: Node, config: Any) -> None:
        self.node = node
        self.config = config
        self.connections: set[Connection] = set()
        self._echo_sockets: set[web.WebSocketResponse] = set()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.accepting = True
        self.admission = Admission(config, node.auth)
        self.app = web.Application()
        self.app[NODE_KEY] = self
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/echo", self.echo)
        self.app.router.add_get("/ws", self.websocket)
        self.app.router.add_get("/", self.index)
        if config.metrics:
            self.registry = CollectorRegistry(auto_describe=False)
            self.registry.register(Collector(self))
            self.app.router.add_get("/metrics", self.metrics)
        self.app.router.add_static("/static/", STATIC_DIR, append_version=False)
        add_api_routes(self)
        self.app.on_response_prepare.append(_no_cache_static)
        self.app.on_startup.append(self._on_startup)
        self.app.on_shutdown.append(self._on_shutdown)

    # -- lifecycle ----------------------------------------------------------------------
    async def _on_startup(self, _app: web.Application) -> None:
        await self.node.start()
        if self.config.ping_interval > 0 or self.node.auth.enabled:
            self._heartbeat_task = asyncio.ensure_future(self._heartbeat())

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.drain(CloseCode.GOING_AWAY, "server shutting down")
        await self.node.close()

    async def drain(self, code: int, reason: str) -> None:
        """Stop accepting, then close every connection with ``code``.

        The closes are spread at random over ``drain_period`` seconds, so the
        clients do not all reconnect to the other nodes in the same instant.
        """
        self.accepting = False
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        period = max(0.0, min(self.config.drain_period, self.config.shutdown_timeout - 1.0))

        async def close_later(conn: Connection) -> None:
            if period:
                await asyncio.sleep(random.uniform(0, period))
            await conn.close(code, reason, timeout=1.0)

        closes = [close_later(c) for c in list(self.connections)]
        closes += [
            ws.close(code=int(code), message=reason.encode()) for ws in list(self._echo_sockets)
        ]
        if closes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*closes, return_exceptions=True),
                    self.config.shutdown_timeout,
                )

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

    def _refuse_if_draining(self) -> web.Response | None:
        if self.accepting:
            return None
        return web.Response(status=503, text="server is shutting down\n",
                            headers={"Retry-After": "1"})

    # -- /echo ---------------------------------------------------------------------------------
    async def echo(self, request: web.Request) -> web.StreamResponse:
        """Echo every text and binary message back unchanged."""
        refused = self._refuse_if_draining()
        if refused is not None:
            return refused
        try:  # Origin and connection limits; /echo takes no token
            self.admission.check(request, token=False)
        except Refused as exc:
            return exc.response
        ws = web.WebSocketResponse(
            autoclose=False,
            max_msg_size=self.config.echo_max_message_size,
            compress=self.config.compression,
            timeout=2.0,
        )
        await ws.prepare(request)
        self._echo_sockets.add(ws)
        self.admission.admitted(request)
        try:
            while True:
                msg = await ws.receive()
                if msg.type is WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type is WSMsgType.CLOSE:
                    await self._answer_close(ws, msg.data)
                    break
                else:  # CLOSING, CLOSED, ERROR: aiohttp already closed with its code
                    break
        except ConnectionError:
            pass
        finally:
            self._echo_sockets.discard(ws)
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
        refused = self._refuse_if_draining()
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
        node, config = self.node, self.config
        conn = Connection(ws, request, codec, node.new_client_id(), max_queue=config.max_queue)
        conn.stats = node.stats
        now = time.monotonic()
        conn.message_bucket = TokenBucket(config.max_messages_per_second,
                                          2 * config.max_messages_per_second, now)
        conn.byte_bucket = TokenBucket(config.max_bytes_per_second,
                                       2 * config.max_bytes_per_second, now)
        if identity is not None:
            node.identify(conn, identity)
        client_id_var.set(conn.client_id)  # every log line of this task names the client
        self.connections.add(conn)
        self.admission.admitted(request)
        node.add_connection(conn)
        conn.start()
        conn.send(self._welcome(conn))
        log.info("client %s: connected from %s (%s)%s", conn.client_id, conn.remote, codec.name,
                 f" as {conn.user}" if conn.user else "")
        try:
            await node.connected(conn)
            await self._read_loop(ws, conn)
        finally:
            self.connections.discard(conn)
            self.admission.released(request)
            conn.closed()
            stats = node.stats
            code = conn.close_code if conn.close_code is not None else ws.close_code
            stats.close_codes[int(code) if code is not None else CloseCode.ABNORMAL] += 1
            stats.dropped += conn.dropped
            stats.conflated += conn.conflated
            await node.remove_connection(conn)
            log.info("client %s: disconnected (code %s)", conn.client_id,
                     conn.close_code if conn.close_code is not None else ws.close_code)
        return ws

    def _welcome(self, conn: Connection) -> Welcome:
        interval = self.config.ping_interval
        fields: dict[str, Any] = {
            "client": conn.client_id, "node": self.node.name, "protocol": PROTOCOL,
            "ping_interval": int(interval) if interval == int(interval) else interval,
        }
        if not self.node.auth.enabled:
            return Welcome(**fields)
        if conn.identity is None:
            return AuthWelcome(**fields, auth="required")
        return AuthWelcome(**fields, auth="authenticated", user=conn.user)

    def _over_limits(self, conn: Connection, data: bytes | str) -> RequestError | None:
        """Token buckets and JSON depth; the error to answer with, if any."""
        now = time.monotonic()
        size = len(data)
        assert conn.message_bucket is not None and conn.byte_bucket is not None
        if not (conn.message_bucket.take(now) and conn.byte_bucket.take(now, size)):
            conn.strikes += 1
            return RequestError(ErrorCode.RATE_LIMITED,
                                f"over {self.config.max_messages_per_second:g} messages or "
                                f"{self.config.max_bytes_per_second:g} bytes per second; "
                                "this message was dropped")
        conn.strikes = 0
        if not conn.codec.binary and json_depth_exceeds(data, self.config.max_json_depth):
            return RequestError(ErrorCode.BAD_REQUEST,
                                f"JSON nested deeper than {self.config.max_json_depth} levels")
        return None

    async def _read_loop(self, ws: web.WebSocketResponse, conn: Connection) -> None:
        node, codec = self.node, conn.codec
        strikes_allowed = self.config.rate_limit_strikes
        max_size = self.config.max_message_size
        debug = log.isEnabledFor(logging.DEBUG)
        stats = node.stats
        while True:
            msg = await ws.receive()
            mtype = msg.type
            if debug:
                log.debug("frame in: %s, %s", mtype.name.lower(),
                          f"{len(msg.data)} bytes: {msg.data[:80]!r}"
                          if isinstance(msg.data, bytes | str) else msg.data)
            if mtype is WSMsgType.TEXT or mtype is WSMsgType.BINARY:
                conn.ping_sent_at = None  # any traffic proves the peer alive
                stats.bytes_in += len(msg.data)
                if len(msg.data) > max_size:  # RFC 6455 §7.4.1
                    await conn.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
                    return
                refused = self._over_limits(conn, msg.data)
                req = codec.decode(msg.data, binary=mtype is WSMsgType.BINARY)
                if refused is not None or isinstance(req, RequestError):
                    err = refused or req
                    assert isinstance(err, RequestError)
                    rid = req.request_id if isinstance(req, RequestError) else req.id
                    conn.send(Error(id=rid, code=err.code, message=err.message))
                    if conn.strikes > strikes_allowed:
                        log.warning("client %s: kept flooding, closing with 1008", conn.client_id)
                        conn.close_soon(CloseCode.POLICY_VIOLATION, "rate limit", flush=True)
                    continue
                stats.ops_in[req.__struct_config__.tag] += 1
                await self._dispatch(node, conn, req)
            elif mtype is WSMsgType.PING:
                conn.send_control(WSMsgType.PONG, msg.data)  # RFC 6455 §5.5.3
            elif mtype is WSMsgType.PONG:
                conn.ping_sent_at = None
            elif mtype is WSMsgType.CLOSE:
                conn.close_code = msg.data or CloseCode.NO_STATUS
                await conn.finish_sending(timeout=1.0)  # replies already queued still go
                await self._answer_close(ws, msg.data)
                return
            else:  # CLOSING, CLOSED or ERROR (aiohttp closed with 1002/1007/1009)
                if mtype is WSMsgType.ERROR:
                    log.info("client %s: protocol error: %s", conn.client_id, msg.data)
                return

    async def _dispatch(self, node: Node, conn: Connection, req: Any) -> None:
        try:
            reply = await node.handle(conn, req)
        except RequestError as exc:
            conn.send(Error(id=req.id, code=exc.code, message=exc.message))
            return
        except BrokerError as exc:
            log.warning("client %s: %s", conn.client_id, exc)
            conn.send(Error(id=req.id, code=ErrorCode.INTERNAL,
                            message="the broker is unavailable; try again"))
            return
        except Exception:
            log.exception("client %s: handler for %s failed", conn.client_id,
                          type(req).__name__.lower())
            conn.send(Error(id=req.id, code=ErrorCode.INTERNAL,
                            message="internal server error; see the server log"))
            return
        if reply is not None:
            try:
                conn.send(reply)
            except (TypeError, ValueError) as exc:
                log.error("client %s: reply not encodable: %s", conn.client_id, exc)
                conn.send(Error(id=req.id, code=ErrorCode.INTERNAL,
                                message="the handler returned a value that cannot be encoded"))

    # -- heartbeat ------------------------------------------------------------------
    def _check_tokens(self, now: float) -> None:
        """Close clients that never authenticated or whose token ran out; ask for refreshes."""
        config = self.config
        for conn in list(self.connections):
            identity = conn.identity
            if identity is None:
                if now - conn.connected_at >= config.connect_timeout and conn.open:
                    conn.send(Error(code=ErrorCode.UNAUTHORIZED,
                                    message="no connect frame within "
                                    f"{config.connect_timeout:g} s"))
                    conn.close_soon(CloseCode.UNAUTHORIZED, "authentication timeout", flush=True)
                continue
            left = identity.expires_at - now
            if left <= 0:
                conn.close_soon(CloseCode.TOKEN_EXPIRED, "token expired")
            elif left <= config.refresh_ahead and not conn.refresh_asked:
                conn.refresh_asked = True
                conn.send(RefreshRequest(expires_in=round(left, 3)))

    async def _heartbeat(self) -> None:
        """Ping every client each interval; close those silent past the timeout."""
        interval, timeout = self.config.ping_interval, self.config.ping_timeout
        tick = max(0.05, min(1.0, interval / 4, timeout / 4))
        last_round = time.monotonic()
        auth = self.node.auth.enabled
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            ping_round = now - last_round >= interval
            if ping_round:
                last_round = now
            if auth:
                self._check_tokens(time.time())
            if interval <= 0:
                continue
            for conn in list(self.connections):
                sent = conn.ping_sent_at
                if sent is not None:
                    if now - sent >= timeout:
                        log.info("client %s: no pong within %.1f s", conn.client_id, timeout)
                        conn.close_soon(CloseCode.HEARTBEAT_TIMEOUT, "no pong")
                elif ping_round:
                    conn.ping_sent_at = now
                    conn.send_control(WSMsgType.PING, b"")

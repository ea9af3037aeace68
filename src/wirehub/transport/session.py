"""What every transport shares: the connections of one node and their protocol.

:class:`Sessions` admits connections, sends the welcome, turns each data frame
into a request (limits, decoding, dispatch to the node), keeps the heartbeat
and token clocks, and drains on shutdown. The aiohttp server
(:mod:`.server`) and the ASGI adapter (:mod:`wirehub.asgi`) each read frames
their own way and hand them to :meth:`Sessions.on_data`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from aiohttp import WSMsgType

from ..config import ServerConfig
from ..core.codec import Codec
from ..core.codes import CloseCode, ErrorCode
from ..core.envelope import PROTOCOL, AuthWelcome, Error, RefreshRequest, Welcome
from ..exceptions import BrokerError, RequestError
from ..limits import TokenBucket, json_depth_exceeds
from ..logs import client_id_var
from ..node import Node
from .admission import Admission
from .connection import Connection

__all__ = ["Sessions"]

log = logging.getLogger("wirehub.server")


class Sessions:
    """The live connections of one node, whatever transport carries them."""

    def __init__(self, node: Node, config: ServerConfig) -> None:
        self.node = node
        self.config = config
        self.connections: set[Connection] = set()
        self.admission = Admission(config, node.auth)
        self.accepting = True
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._closers: list[Any] = []  #: extra sockets to close on drain (e.g. /echo)

    async def start(self) -> None:
        await self.node.start()
        if self.config.ping_interval > 0 or self.node.auth.enabled:
            self._heartbeat_task = asyncio.ensure_future(self._heartbeat())

    async def stop(self) -> None:
        await self.drain(CloseCode.GOING_AWAY, "server shutting down")
        await self.node.close()

    # -- connections ----------------------------------------------------------------------
    def open_connection(self, sink: Any, request: Any, codec: Codec,
                        identity: Any) -> Connection:
        """Register a just-upgraded connection and queue its welcome."""
        node, config = self.node, self.config
        conn = Connection(sink, request, codec, node.new_client_id(), max_queue=config.max_queue)
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
        log.info("client %s: connected from %s (%s)%s", conn.client_id, conn.remote,
                 codec.name, f" as {conn.user}" if conn.user else "")
        return conn

    async def close_connection(self, conn: Connection, request: Any, code: int | None) -> None:
        """Forget a connection that is over; ``code`` is how it closed."""
        self.connections.discard(conn)
        self.admission.released(request)
        conn.closed()
        stats = self.node.stats
        code = conn.close_code if conn.close_code is not None else code
        stats.close_codes[int(code) if code is not None else CloseCode.ABNORMAL] += 1
        stats.dropped += conn.dropped
        stats.conflated += conn.conflated
        await self.node.remove_connection(conn)
        log.info("client %s: disconnected (code %s)", conn.client_id, code)

    async def on_data(self, conn: Connection, data: bytes | str, binary: bool) -> bool:
        """Handle one text or binary message; False when the connection must end."""
        conn.ping_sent_at = None  # any traffic proves the peer alive
        if not conn.open:  # a close is under way: nothing more is served
            return False
        stats = self.node.stats
        stats.bytes_in += len(data)
        conn.last_frame_size = len(data)
        if len(data) > self.config.max_message_size:  # RFC 6455 §7.4.1
            await conn.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
            return False
        refused = self._over_limits(conn, data)
        req = conn.codec.decode(data, binary=binary)
        if refused is not None or isinstance(req, RequestError):
            err = refused or req
            assert isinstance(err, RequestError)
            rid = req.request_id if isinstance(req, RequestError) else req.id
            conn.send(Error(id=rid, code=err.code, message=err.message))
            if conn.strikes > self.config.rate_limit_strikes:
                log.warning("client %s: kept flooding, closing with 1008", conn.client_id)
                conn.close_soon(CloseCode.POLICY_VIOLATION, "rate limit", flush=True)
            return True
        stats.ops_in[req.__struct_config__.tag] += 1
        await self._dispatch(self.node, conn, req)
        return True

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

    # -- drain ---------------------------------------------------------------------------
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
        closes += [closer(int(code), reason) for closer in list(self._closers)]
        if closes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*closes, return_exceptions=True),
                    self.config.shutdown_timeout,
                )

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

"""One client's WebSocket on the server: outbound queue, writer, close.

The hub hands a connection already-encoded frames through :meth:`deliver`,
which never blocks: frames wait in a bounded queue that a writer task drains
into aiohttp. A client that stops reading fills its queue; past the limit it
is disconnected with close code 4000 (slow consumer, retryable) while every
other client keeps receiving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

from ..core.codec import Codec
from ..core.codes import CloseCode
from ..core.state import ConnectionState, StateEvent, StateMachine

__all__ = ["Connection"]

log = logging.getLogger("wirehub.connection")

_TEXT, _BINARY, _PING, _PONG = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG


class Connection:
    """A connected client as app handlers see it (``conn`` in ``@app.on``)."""

    __slots__ = (
        "_closing_task",
        "_queue",
        "_queued_bytes",
        "_waiter",
        "_writer_task",
        "_ws",
        "client_id",
        "close_code",
        "codec",
        "connected_at",
        "max_queue",
        "ping_sent_at",
        "remote",
        "request",
        "state",
        "user",
        "user_agent",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        codec: Codec,
        client_id: str,
        *,
        max_queue: int,
    ) -> None:
        self._ws = ws
        self.request = request
        self.codec = codec
        self.client_id = client_id
        self.remote = request.remote or ""
        self.user_agent = request.headers.get("User-Agent", "")
        self.connected_at = time.time()
        self.user: str | None = None
        self.max_queue = max_queue
        self.state = StateMachine(ConnectionState.OPEN)
        self.close_code: int | None = None
        self.ping_sent_at: float | None = None
        self._queue: deque[tuple[bytes, WSMsgType]] = deque()
        self._queued_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._closing_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.client_id} {self.remote} {self.state.state.name}>"

    @property
    def info(self) -> dict[str, Any]:
        """The registry entry: id, remote address, user agent, connect time."""
        return {
            "client": self.client_id,
            "remote": self.remote,
            "user_agent": self.user_agent,
            "connected_at": self.connected_at,
            "user": self.user,
            "subprotocol": self.codec.name,
        }

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def open(self) -> bool:
        return self.state.state is ConnectionState.OPEN

    # -- outbound ---------------------------------------------------------------------
    def start(self) -> None:
        self._writer_task = asyncio.ensure_future(self._write_loop())

    def send(self, envelope: Any) -> None:
        """Encode ``envelope`` with this client's codec and queue it."""
        self.deliver(self.codec.encode(envelope), self.codec.binary)

    def deliver(self, payload: bytes, binary: bool, channel: str | None = None) -> None:
        """Queue an encoded frame; cut the client off if its queue overflows."""
        if not self.open:
            return
        self._queued_bytes += len(payload)
        if self._queued_bytes > self.max_queue:
            log.warning(
                "client %s: outbound queue over %d bytes, disconnecting slow consumer",
                self.client_id,
                self.max_queue,
            )
            self.close_soon(CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        self._queue.append((payload, _BINARY if binary else _TEXT))
        self._wake()

    def send_control(self, opcode: WSMsgType, payload: bytes = b"") -> None:
        """Queue a ping or pong (RFC 6455 §5.5.2, §5.5.3)."""
        if self.open:
            self._queue.append((payload, opcode))
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _write_loop(self) -> None:
        queue, ws = self._queue, self._ws
        loop = asyncio.get_running_loop()
        try:
            while True:
                while queue:
                    payload, opcode = queue.popleft()
                    if opcode is _TEXT or opcode is _BINARY:
                        self._queued_bytes -= len(payload)
                    await ws.send_frame(payload, opcode)
                self._waiter = loop.create_future()
                await self._waiter
                self._waiter = None
        except (ConnectionError, RuntimeError) as exc:
            log.debug("client %s: write failed: %s", self.client_id, exc)
            self.close_soon(CloseCode.ABNORMAL, "write failed")
        except asyncio.CancelledError:
            pass

    # -- closing -----------------------------------------------------------------------
    def close_soon(self, code: int, reason: str = "") -> None:
        """Start closing without waiting (safe to call from a delivery path)."""
        if self._closing_task is None and self.state.state is not ConnectionState.CLOSED:
            self._closing_task = asyncio.ensure_future(self.close(code, reason))

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "", *,
                    timeout: float = 2.0) -> None:
        """Close with ``code``; abort the TCP connection if the peer does not answer."""
        if self.state.state is ConnectionState.CLOSED:
            return
        if self.state.can(StateEvent.CLOSE_STARTED):
            self.state.fire(StateEvent.CLOSE_STARTED)
        if self.close_code is None:
            self.close_code = int(code)
        self._queue.clear()
        self._queued_bytes = 0
        if self._writer_task is not None:
            self._writer_task.cancel()
        if code == CloseCode.ABNORMAL:
            self.abort()
            return
        try:
            await asyncio.wait_for(
                self._ws.close(code=int(code), message=reason.encode()[:123]), timeout
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def closed(self) -> None:
        """Called by the server once the connection is over."""
        if self._writer_task is not None:
            self._writer_task.cancel()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        self._queue.clear()
        self.state.fire(StateEvent.CONNECTION_LOST)

    async def wait_closed(self) -> None:
        if self._closing_task is not None:
            with contextlib.suppress(Exception):
                await self._closing_task

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
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from ..auth import Identity
from ..core.codec import Codec
from ..core.codes import CloseCode
from ..core.envelope import Error
from ..core.namespaces import SlowConsumerPolicy
from ..core.state import ConnectionState, StateEvent, StateMachine
from ..limits import TokenBucket
from .coalesce import FAST_LIMIT, FLUSHER, frame
from .flow import Flow

if TYPE_CHECKING:
    from ..metrics import Stats

__all__ = ["Connection"]

log = logging.getLogger("wirehub.connection")

_TEXT, _BINARY, _PING, _PONG = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG


class Connection:
    """A connected client as app handlers see it (``conn`` in ``@app.on``)."""

    __slots__ = (
        "_backlog",
        "_closing_task",
        "_flows",
        "_flush_waiter",
        "_out",
        "_pong_payload",
        "_queue",
        "_queued_bytes",
        "_transport",
        "_writer_task",
        "_ws",
        "byte_bucket",
        "channels",
        "client_id",
        "close_code",
        "codec",
        "conflate_threshold",
        "conflated",
        "connected_at",
        "dropped",
        "identity",
        "info",
        "last_frame_size",
        "max_queue",
        "message_bucket",
        "open",
        "ping_sent_at",
        "pong_pending",
        "refresh_asked",
        "remote",
        "request",
        "state",
        "stats",
        "strikes",
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
        #: the verified token's identity (None: anonymous or not authenticated yet)
        self.identity: Identity | None = None
        self.refresh_asked = False
        #: rate limits (set by the server) and rate-limited messages in a row
        self.message_bucket: TokenBucket | None = None
        self.byte_bucket: TokenBucket | None = None
        self.strikes = 0
        #: size of the frame being handled (history memory accounting)
        self.last_frame_size = 0
        #: a pong is queued and not yet sent: further pings are not answered twice
        self.pong_pending = False
        self._pong_payload = b""
        #: the node's counters (error frames are counted as they are sent)
        self.stats: Stats | None = None
        self._flush_waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None  #: set when the fast path is on
        self._out: list[bytes] = []  #: serialized frames for this loop turn's write
        #: what the app says about this client; shown in presence entries
        self.info: dict[str, Any] = {}
        #: channels this client is subscribed to (kept by the node)
        self.channels: set[str] = set()
        self.max_queue = max_queue
        #: queued bytes past which a lagging client's conflating channels keep only
        #: their newest message (see _backed_up)
        self.conflate_threshold = min(16 * 1024, max_queue // 4)
        self.conflated = 0  #: messages replaced by a newer one before being sent
        self.dropped = 0  #: messages dropped by the drop_oldest policy
        self._flows: dict[str, Flow] = {}
        self._backlog: dict[str, tuple[bytes, bool]] = {}
        self.state = StateMachine(ConnectionState.OPEN)
        #: state is OPEN (a plain attribute: it is read on every delivery)
        self.open = True
        self.state.add_listener(self._state_changed)
        self.close_code: int | None = None
        self.ping_sent_at: float | None = None
        #: the slow path's frames (made on first use: most clients never need it)
        self._queue: deque[tuple[bytes, WSMsgType, str | None]] | None = None
        self._queued_bytes = 0
        self._writer_task: asyncio.Task[None] | None = None
        self._closing_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.client_id} {self.remote} {self.state.state.name}>"

    @property
    def registry_entry(self) -> dict[str, Any]:
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
    def sending_queued(self) -> bool:
        """Frames wait on the slow path (the socket was full) and the writer is on them."""
        return self._writer_task is not None

    def _state_changed(self, _old: ConnectionState, new: ConnectionState) -> None:
        self.open = new is ConnectionState.OPEN

    # -- outbound ---------------------------------------------------------------------
    def start(self) -> None:
        """Decide the write path. A writer task runs only while the slow path has work.

        Fast path (no permessage-deflate, not debugging): frames are serialized
        with websockets' sans-I/O ``Frame`` and gathered per connection; once per
        event-loop turn they go out in a single ``transport.write``. No task,
        future or syscall per delivered message. When the socket backs up, or
        for control frames, frames take the queue and the writer task, which
        waits for the socket to drain.
        """
        transport = self.request.transport
        compressed = getattr(self._ws, "compress", 0)
        if transport is not None and not compressed and not log.isEnabledFor(logging.DEBUG):
            self._transport = transport

    def send(self, envelope: Any) -> None:
        """Encode ``envelope`` with this client's codec and queue it."""
        if type(envelope) is Error and self.stats is not None:
            self.stats.errors[envelope.code] += 1
        self.deliver(self.codec.encode(envelope), self.codec.binary)

    def set_flow(self, channel: str, max_rate: float | None,
                 policy: SlowConsumerPolicy | None) -> None:
        """Set (or with ``None`` clear) the rate cap and slow-consumer policy of a channel."""
        old = self._flows.pop(channel, None)
        if old is not None:
            old.cancel()
        self._backlog.pop(channel, None)
        if policy is None or (max_rate is None and policy is SlowConsumerPolicy.DISCONNECT):
            return
        self._flows[channel] = Flow(channel, max_rate, policy)

    def deliver(self, payload: bytes, binary: bool, channel: str | None = None) -> None:
        """Queue an encoded frame, applying the channel's rate cap and queue policy."""
        if not self.open:
            return
        flow = self._flows.get(channel) if self._flows and channel is not None else None
        if flow is None:
            self._enqueue(payload, binary, channel)
            return
        if flow.interval:
            now = asyncio.get_running_loop().time()
            if flow.pending is not None or now - flow.last_sent < flow.interval:
                if flow.pending is not None:
                    self.conflated += 1
                flow.pending = (payload, binary)
                if flow.timer is None:
                    flow.timer = asyncio.get_running_loop().call_at(
                        max(now, flow.last_sent + flow.interval), self._release_flow, flow
                    )
                return
            flow.last_sent = now
        self._enqueue_with_policy(flow, payload, binary)

    def _release_flow(self, flow: Flow) -> None:
        flow.timer = None
        pending, flow.pending = flow.pending, None
        if pending is not None and self.open:
            flow.last_sent = asyncio.get_running_loop().time()
            self._enqueue_with_policy(flow, *pending)

    def _enqueue_with_policy(self, flow: Flow, payload: bytes, binary: bool) -> None:
        policy = flow.policy
        if policy is SlowConsumerPolicy.CONFLATE:
            if flow.channel in self._backlog or self._backed_up():
                if flow.channel in self._backlog:
                    self.conflated += 1
                self._backlog[flow.channel] = (payload, binary)
                return
        elif policy is SlowConsumerPolicy.DROP_OLDEST:
            self._make_room(flow.channel, len(payload))
            if self._queued_bytes + len(payload) > self.max_queue:
                self.dropped += 1
                return
        self._enqueue(payload, binary, flow.channel)

    def _backed_up(self) -> bool:
        """The socket refuses more bytes and frames wait behind it: the client lags.

        A burst that merely queues up within one loop turn does not count.
        """
        if self._queued_bytes <= self.conflate_threshold:
            return False
        transport = self.request.transport
        return transport is None or transport.get_write_buffer_size() > 0

    def _make_room(self, channel: str, size: int) -> None:
        """Drop the channel's oldest queued messages until ``size`` more bytes fit."""
        queue = self._queue
        i = 0
        while queue and self._queued_bytes + size > self.max_queue and i < len(queue):
            payload, _opcode, ch = queue[i]
            if ch == channel:
                del queue[i]
                self._queued_bytes -= len(payload)
                self.dropped += 1
            else:
                i += 1

    def _enqueue(self, payload: bytes, binary: bool, channel: str | None) -> None:
        transport = self._transport
        if transport is not None and not self._queue and self._writer_task is None:
            out = self._out
            if out:  # already gathering this turn: the socket was checked then
                out.append(frame(payload, binary))
                return
            if transport.get_write_buffer_size() < FAST_LIMIT:
                FLUSHER.schedule(self)
                out.append(frame(payload, binary))
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
        self._push((payload, _BINARY if binary else _TEXT, channel))

    def send_control(self, opcode: WSMsgType, payload: bytes = b"") -> None:
        """Queue a ping or pong (RFC 6455 §5.5.2, §5.5.3).

        At most one pong waits at a time, carrying the most recent ping's
        payload: a peer that floods pings while not reading cannot grow the
        queue (§5.5.3 lets an endpoint answer only the most recent ping).
        """
        if not self.open:
            return
        if opcode is _PONG:
            self._pong_payload = payload
            if self.pong_pending:
                return
            self.pong_pending = True
        self._push((payload, opcode, None))

    def _push(self, item: tuple[bytes, WSMsgType, str | None]) -> None:
        if self._queue is None:
            self._queue = deque()
        self._queue.append(item)
        self._wake()

    def _wake(self) -> None:
        if self._writer_task is None and self.state.state is not ConnectionState.CLOSED:
            self._writer_task = asyncio.ensure_future(self._write_loop())

    async def _write_loop(self) -> None:
        queue, ws = self._queue, self._ws
        assert queue is not None  # _push made it before starting this task
        debug = log.isEnabledFor(logging.DEBUG)
        try:
            while True:
                while queue:
                    payload, opcode, _channel = queue.popleft()
                    if opcode is _TEXT or opcode is _BINARY:
                        self._queued_bytes -= len(payload)
                    elif opcode is _PONG:
                        payload, self.pong_pending = self._pong_payload, False
                    if debug:
                        log.debug("frame out: %s, %d bytes: %r", opcode.name.lower(),
                                  len(payload), payload[:80])
                    await ws.send_frame(payload, opcode)
                if self._backlog:  # drained: the newest of each conflated channel goes now
                    backlog, self._backlog = self._backlog, {}
                    for channel, (payload, binary) in backlog.items():
                        self._enqueue(payload, binary, channel)
                    continue
                if self._flush_waiter is not None and not self._flush_waiter.done():
                    self._flush_waiter.set_result(None)
                self._writer_task = None  # no await after this: _wake starts a new one
                return
        except (ConnectionError, RuntimeError) as exc:
            log.debug("client %s: write failed: %s", self.client_id, exc)
            if self.open:  # once closing, the close handshake owns the socket
                self.close_soon(CloseCode.ABNORMAL, "write failed")
        except asyncio.CancelledError:
            pass

    # -- closing -----------------------------------------------------------------------
    def close_soon(self, code: int, reason: str = "", *, flush: bool = False) -> None:
        """Start closing without waiting (safe to call from a delivery path).

        With ``flush``, what is already queued (say, the error that explains the
        close) is sent first.
        """
        if self._closing_task is None and self.state.state is not ConnectionState.CLOSED:
            self._closing_task = asyncio.ensure_future(self.close(code, reason, flush=flush))

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "", *,
                    timeout: float = 2.0, flush: bool = False) -> None:
        """Close with ``code``; abort the TCP connection if the peer does not answer."""
        if self.state.state is ConnectionState.CLOSED:
            return
        if flush and self._queue and self.open:
            self._flush_waiter = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._flush_waiter), timeout)
        if self.close_code is None:
            self.close_code = int(code)
        self.stop_sending()
        if code == CloseCode.ABNORMAL:
            self.abort()
            return
        try:
            await asyncio.wait_for(
                self._ws.close(code=int(code), message=reason.encode()[:123]), timeout
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()

    async def finish_sending(self, timeout: float) -> None:
        """The peer started the close: send what is queued (RFC 6455 §5.5.1), then stop."""
        self.flush()
        if self.state.can(StateEvent.CLOSE_STARTED):
            self.state.fire(StateEvent.CLOSE_STARTED)  # deliver() takes nothing more
        if self._queue and self._writer_task is not None and not self._writer_task.done():
            self._flush_waiter = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._flush_waiter), timeout)
        self.stop_sending()

    def write_first(self, data: bytes) -> bool:
        """Put ``data`` ahead of the frames gathered this loop turn, in the same write.

        The lean transport gives it the handshake response, so the 101 and the
        welcome leave in one write. False if nothing is being gathered (the
        caller writes ``data`` itself, before anything else).
        """
        if not self._out:
            return False
        self._out.insert(0, data)
        return True

    def flush(self) -> None:
        """Write the frames gathered this loop turn in one go (called by the flusher)."""
        out = self._out
        if not out:
            return
        transport = self._transport
        if (transport is not None and not transport.is_closing()
                and self.state.state is not ConnectionState.CLOSED):
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()  # the same list again next turn: no allocation per flush

    def stop_sending(self) -> None:
        """Enter CLOSING: drop what is queued and stop the writer.

        After a close frame nothing else may be sent (RFC 6455 §5.5.1), and a
        writer still sending would fail and tear the socket down before the
        close frame is flushed.
        """
        if self.state.can(StateEvent.CLOSE_STARTED):
            self.state.fire(StateEvent.CLOSE_STARTED)
        self._drop_outbound()
        if self._writer_task is not None:
            self._writer_task.cancel()

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def closed(self) -> None:
        """Called by the server once the connection is over."""
        if self._writer_task is not None:
            self._writer_task.cancel()
        self._drop_outbound()
        self.state.fire(StateEvent.CONNECTION_LOST)

    def _drop_outbound(self) -> None:
        self._out = []
        self._transport = None
        if self._queue is not None:
            self._queue.clear()
        self._queued_bytes = 0
        self._backlog.clear()
        for flow in self._flows.values():
            flow.cancel()

    async def wait_closed(self) -> None:
        if self._closing_task is not None:
            with contextlib.suppress(Exception):
                await self._closing_task

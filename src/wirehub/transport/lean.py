"""The lean WebSocket path (``transport = "lean"``): no aiohttp under a WebSocket.

A front protocol on the listening socket reads the first request head. A
WebSocket upgrade to ``/ws`` or ``/echo`` is served by the websockets
library's sans-I/O ``ServerProtocol`` (handshake, subprotocols,
permessage-deflate, framing, message size, pings, close handshake) driven
from a plain ``asyncio.Protocol``; every other request is handed over, bytes
and all, to aiohttp's ``web.Server``, the protocol factory aiohttp's own
sites use, so ``/healthz``, ``/metrics``, the page, the admin view and the
HTTP API are served exactly as with ``transport = "aiohttp"``.

Per connection this holds the protocol object, the sans-I/O parser and
wirehub's :class:`~wirehub.transport.connection.Connection`, and no task
while the client is idle: a request's handler runs in a task made when a
message arrives and gone when the inbox is empty (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, urlsplit

from aiohttp import WSMsgType
from multidict import CIMultiDict, MultiDict
from websockets.exceptions import InvalidState
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from ..core.codec import CODECS, JSON
from ..core.codes import CloseCode, valid_close_code
from .admission import Refused
from .coalesce import EchoGatherer

if TYPE_CHECKING:
    from .connection import Connection
    from .server import WirehubServer

__all__ = ["FrontProtocol"]

log = logging.getLogger("wirehub.server")
#: websockets' own lines (a connection opened, closed): per connection, so quiet by default
_protocol_log = logging.getLogger("wirehub.lean")
_protocol_log.setLevel(logging.WARNING)

_PATHS = ("/ws", "/echo")
_CLOSING: set[asyncio.Task[None]] = set()
_MAX_HEAD = 16 * 1024  #: a longer request head goes to aiohttp, which answers it


def _upgrade_target(head: bytes) -> str | None:
    """``/ws`` or ``/echo`` when ``head`` asks to upgrade one of them to a WebSocket."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return None
    path = parts[1].split(b"?", 1)[0].decode("latin-1")
    if path not in _PATHS:
        return None
    for header in rest.split(b"\r\n"):
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"upgrade" and b"websocket" in value.lower():
            return path
    return None


class FrontProtocol(asyncio.Protocol):
    """Reads the first request head and gives the connection to its handler."""

    def __init__(self, server: WirehubServer, fallback: Callable[[], asyncio.Protocol]) -> None:
        self._server = server
        self._fallback = fallback
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        timeout = self._server.config.handshake_timeout
        self._timer = asyncio.get_running_loop().call_later(timeout, self._transport.abort)

    def data_received(self, data: bytes) -> None:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0 and len(self._head) <= _MAX_HEAD and b"GET /".startswith(self._head[:5]):
            return  # the head is not complete yet (anything else is aiohttp's at once)
        path = _upgrade_target(bytes(self._head[:end])) if end >= 0 else None
        proto: asyncio.Protocol = (LeanSocket(self._server, path, self._fallback)
                                   if path is not None else self._fallback())
        self._hand_over(proto)

    def _hand_over(self, proto: asyncio.Protocol) -> None:
        if self._timer is not None:
            self._timer.cancel()
        transport, data = self._transport, bytes(self._head)
        assert transport is not None
        self._head.clear()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        proto.data_received(data)

    def eof_received(self) -> bool | None:
        if self._transport is not None:
            self._transport.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _Protocol(ServerProtocol):
    """websockets' server protocol, handing each frame over as it is parsed.

    Frames reach :class:`LeanSocket` one by one, in order, while the parser
    works: a message that arrives in the same read as the peer's close frame
    is answered before that close frame is (the protocol queues its close
    reply when it parses it). A close frame without a code is answered with
    1000 on every wirehub transport (docs/protocol.md); websockets would echo
    it empty. On ``/ws`` pings are answered by the connection, which keeps at
    most one pong waiting for a peer that does not read (RFC 6455 §5.5.3).
    """

    empty_close = False
    owner: LeanSocket

    def recv_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.CLOSE:
            if not frame.data and self.state is State.OPEN:
                self.empty_close = True
                frame = Frame(Opcode.CLOSE, Close(CloseCode.NORMAL, "").serialize())
            # a close may come between the fragments of a message (RFC 6455 §5.4,
            # Autobahn 7.1.5): the message is dropped, the close answered normally
            # (websockets would fail the connection with 1002)
            self.current_size = None
            self.owner.before_close()
            super().recv_frame(frame)
            self.owner.peer_closed()
            return
        if opcode is Opcode.PING and self.owner.answers_pings:
            self.owner.on_frame(frame)  # /ws: at most one pong waits (Connection.send_control)
            return
        super().recv_frame(frame)  # checks fragmentation; answers pings (/echo)
        if opcode is not Opcode.PING:
            self.owner.on_frame(frame)


def _first_known(_ws: ServerProtocol, offered: Sequence[str]) -> Any:
    """The first subprotocol the client offers that wirehub speaks (its order, as aiohttp)."""
    return next((p for p in offered if p in CODECS), None)


class _Request:
    """What admission and connections read from a request, from the websockets one."""

    def __init__(self, request: Request, transport: asyncio.Transport) -> None:
        self.transport: asyncio.Transport | None = transport
        self.headers = CIMultiDict(request.headers.raw_items())
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if peer else ""
        self.secure = transport.get_extra_info("sslcontext") is not None
        self.host = self.headers.get("Host", "")
        self.path = request.path
        self.query = MultiDict(parse_qsl(urlsplit(request.path).query))


class LeanSocket(asyncio.Protocol):
    """One WebSocket on the websockets sans-I/O protocol; also the Connection's sink."""

    def __init__(self, server: WirehubServer, path: str,
                 fallback: Callable[[], asyncio.Protocol]) -> None:
        self._server = server
        self._path = path
        self._fallback = fallback
        #: the bytes of the request head, until websockets has parsed it
        self._raw: bytearray | None = bytearray()
        config = server.config
        self.compress = False  #: set when permessage-deflate is negotiated (no fast path)
        self.transport: asyncio.Transport | None = None
        max_size = config.max_message_size if path == "/ws" else config.echo_max_message_size
        self.ws = _Protocol(
            extensions=[ServerPerMessageDeflateFactory()] if config.compression else None,
            subprotocols=list(CODECS) if path == "/ws" else None,
            select_subprotocol=_first_known,  # none offered means JSON, as with aiohttp
            max_size=max_size,
            logger=_protocol_log,
        )
        self.ws.owner = self
        self.request: _Request | None = None
        self.conn: Connection | None = None
        self._echo: EchoGatherer | None = None
        self._parts: list[bytes] = []  #: a fragmented message's frames so far
        self._opcode = Opcode.TEXT
        self._inbox: deque[tuple[bytes | str, bool]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None  #: set while writing is paused
        self._gone: asyncio.Future[None] | None = None  #: done once the socket is closed
        self._close_code: int | None = None
        #: frames parsed before the handshake was answered (pipelined), replayed after it
        self._early: list[Frame] | None = []

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        if self._raw is not None:
            self._raw += data
        ws.receive_data(data)  # frames go to on_frame as they are parsed
        if self._raw is not None and ws.handshake_exc is not None:
            self._to_aiohttp()  # a request websockets finds malformed: aiohttp answers it
            return
        for event in ws.events_received():
            if isinstance(event, Request):
                self._raw = None
                self._handshake(event)
        self._write_out()

    def _to_aiohttp(self) -> None:
        """Give the connection and its bytes to aiohttp, as the front protocol does."""
        transport, raw = self.transport, bytes(self._raw or b"")
        assert transport is not None
        self._raw = None
        proto = self._fallback()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        proto.data_received(raw)

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._write_out()
        return None

    @property
    def answers_pings(self) -> bool:
        return self._path == "/ws"

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        # /echo: a peer that does not read its echoes stops being read (as aiohttp's
        # send awaits the drain). /ws bounds its queue per connection instead.
        if self._path == "/echo" and self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        if self._path == "/echo" and self.transport is not None \
                and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)
        self._gone = None
        conn = self.conn
        if conn is None:
            if self._echo is not None and self.request is not None:  # an admitted /echo
                self._server.admission.released(self.request)
                self._server.echo_sockets.discard(self)
                self._echo = None
            return
        self.conn = None
        if self._worker is not None:
            self._worker.cancel()
        code = self._close_code if self._close_code is not None else CloseCode.ABNORMAL
        task = asyncio.ensure_future(self._server.close_connection(conn, self.request, code))
        _CLOSING.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(_CLOSING.discard)

    # -- handshake -------------------------------------------------------------------------
    def _handshake(self, request: Request) -> None:
        server, ws = self._server, self.ws
        assert self.transport is not None
        self.request = req = _Request(request, self.transport)
        if "Host" not in req.headers:  # HTTP/1.1 requires it (RFC 9112 §3.2), as aiohttp does
            self._reject(400, "Missing Host header\n")
            return
        refused = server.refuse_if_draining()
        if refused is None and self._path == "/ws":
            offered = [p.strip() for v in req.headers.getall("Sec-WebSocket-Protocol", [])
                       for p in v.split(",") if p.strip()]
            if offered and not any(p in CODECS for p in offered):
                self._reject(400, f"unsupported subprotocol {', '.join(offered)}; "
                             f"supported: {', '.join(CODECS)}\n")
                return
        identity = None
        if refused is None:
            try:
                identity = server.admission.check(req, token=self._path == "/ws")
            except Refused as exc:
                refused = exc.response
        if refused is not None:
            self._reject(refused.status, refused.text or "", dict(refused.headers))
            return
        response = ws.accept(request)
        ws.send_response(response)
        if response.status_code != 101:  # websockets refused it (a bad handshake)
            return
        self.compress = any(e.name == "permessage-deflate" for e in ws.extensions)
        if self._path == "/echo":
            server.admission.admitted(req)
            server.echo_sockets.add(self)
            self._echo = EchoGatherer(None if self.compress else self.transport)
        else:
            codec = CODECS.get(ws.subprotocol or "", JSON)
            self.conn = server.open_connection(self, req, codec, identity)
            self._inbox = deque()
            self._worker = asyncio.ensure_future(self._serve_inbox(first=True))
        early, self._early = self._early, None
        for frame in early or ():
            self._frame(frame)

    def _reject(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._early = None
        response = self.ws.reject(status, text)
        for name, value in (headers or {}).items():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        self.ws.send_response(response)

    # -- frames in (called by the parser, in order) -----------------------------------------
    def on_frame(self, frame: Frame) -> None:
        if self._early is not None:  # before the handshake is answered
            self._early.append(frame)
        else:
            self._frame(frame)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if opcode is not Opcode.CONT:
                self._opcode = opcode
            if not frame.fin:
                self._parts.append(frame.data)
                return
            data = frame.data
            if self._parts:
                self._parts.append(data)
                data, self._parts = b"".join(self._parts), []
            self._message(data, self._opcode is Opcode.BINARY)
        elif opcode is Opcode.PONG and self.conn is not None:
            self.conn.ping_sent_at = None
        elif opcode is Opcode.PING and self.conn is not None:
            self.conn.send_control(WSMsgType.PONG, frame.data)

    def _message(self, data: bytes, binary: bool) -> None:
        text: bytes | str = data
        if not binary:
            try:
                text = data.decode()
            except UnicodeDecodeError:  # RFC 6455 §8.1
                self._fail(CloseCode.INVALID_PAYLOAD, "invalid UTF-8")
                return
        if self._echo is not None:
            if not self._echo.send(data, binary):  # backed up: the protocol buffers it
                self._echo.flush()
                with contextlib.suppress(InvalidState):  # closing: too late to answer
                    if binary:
                        self.ws.send_binary(data)
                    else:
                        self.ws.send_text(data)
            return
        if self.conn is None or self.ws.state is not State.OPEN:
            return
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append((text if not binary else data, binary))
        if self._worker is None:
            self._worker = asyncio.ensure_future(self._serve_inbox())

    async def _serve_inbox(self, first: bool = False) -> None:
        """Handle queued messages in order; the task ends when the inbox is empty.

        The first run awaits the app's connect hooks before any message.
        """
        conn, inbox, on_data = self.conn, self._inbox, self._server.on_data
        assert conn is not None and inbox is not None
        try:
            if first:
                await self._server.node.connected(conn)
            while inbox:
                data, binary = inbox.popleft()
                if not await on_data(conn, data, binary):
                    inbox.clear()
                    break
        finally:
            self._worker = None

    def before_close(self) -> None:
        """The peer's close frame is next: what this turn gathered goes before the reply."""
        self._parts = []
        self._flush_gathered()

    def peer_closed(self) -> None:
        """The peer's close frame was parsed (and its reply queued): record its code."""
        rcvd = self.ws.close_rcvd
        code = CloseCode.NO_STATUS if rcvd is None or self.ws.empty_close else rcvd.code
        self._close_code = code if code == CloseCode.NO_STATUS or valid_close_code(code) \
            else CloseCode.PROTOCOL_ERROR
        conn = self.conn
        if conn is not None:
            conn.close_code = self._close_code
            conn.stop_sending()

    def _fail(self, code: int, reason: str) -> None:
        self._flush_gathered()
        self._close_code = code
        if self.conn is not None:
            self.conn.close_code = code
            self.conn.stop_sending()
        self.ws.fail(code, reason)

    def _flush_gathered(self) -> None:
        if self._echo is not None:
            self._echo.flush()
        elif self.conn is not None:
            self.conn.flush()

    # -- frames out ------------------------------------------------------------------------
    def _write_out(self) -> None:
        transport = self.transport
        if transport is None:
            return
        ws = self.ws
        if ws.parser_exc is not None and self._close_code is None:  # a protocol error
            sent = ws.close_sent
            self._close_code = sent.code if sent is not None else CloseCode.PROTOCOL_ERROR
            if self.conn is not None:
                self.conn.close_code = self._close_code
            who = self.conn.client_id if self.conn is not None else "(echo)"
            log.info("client %s: protocol error: %s", who, ws.parser_exc)
        chunks = ws.data_to_send()
        if not chunks:
            return
        if ws.close_sent is not None or ws.close_rcvd is not None:
            self._flush_gathered()  # data gathered this turn precedes the close frame
        for chunk in chunks:
            if chunk:
                if not transport.is_closing():
                    transport.write(chunk)
            else:  # the protocol's end of stream: a server closes the TCP connection
                transport.close()

    # -- the Connection's sink ---------------------------------------------------------------
    async def send_frame(self, payload: bytes, opcode: WSMsgType) -> None:
        """Send one frame the slow way (through the protocol), waiting while the socket is full."""
        ws = self.ws
        if ws.state is not State.OPEN:
            raise ConnectionError("the WebSocket is closing")
        if opcode is WSMsgType.TEXT:
            ws.send_text(payload)
        elif opcode is WSMsgType.BINARY:
            ws.send_binary(payload)
        elif opcode is WSMsgType.PING:
            ws.send_ping(payload)
        elif opcode is WSMsgType.PONG:
            ws.send_pong(payload)
        self._write_out()
        if self._drained is not None:
            await asyncio.shield(self._drained)

    async def close(self, *, code: int = CloseCode.NORMAL, message: bytes = b"") -> bool:
        """Send a close frame and wait for the peer's, or for the socket to go."""
        ws = self.ws
        if ws.state is not State.OPEN:
            return False
        self._flush_gathered()
        self._close_code = code
        ws.send_close(code, message.decode(errors="replace"))
        self._write_out()
        transport = self.transport
        if transport is None or transport.is_closing():
            return True
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._gone)
        return True

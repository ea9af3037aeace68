"""The lean WebSocket path (``transport = "lean"``, the default): no aiohttp handler per WebSocket.

A front protocol on the listening socket reads the first request head. A
WebSocket upgrade to ``/ws`` or ``/echo`` is served from a plain ``asyncio.Protocol``
by two libraries: the websockets library's sans-I/O ``ServerProtocol`` does
the handshake (subprotocols, permessage-deflate), writes frames and keeps the
close handshake and pings; aiohttp's compiled frame reader (the one under
aiohttp's own WebSockets) parses what the client sends, about eight times
faster than websockets' Python parser. Every other request is handed over, bytes
and all, to aiohttp's ``web.Server``, the protocol factory aiohttp's own
sites use, so ``/healthz``, ``/metrics``, the page, the admin view and the
HTTP API are served exactly as with ``transport = "aiohttp"``.

Per connection this holds websockets' protocol object, aiohttp's frame
reader, wirehub's :class:`~wirehub.transport.connection.Connection`, and no task
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
from aiohttp._websocket.models import WebSocketError
from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
from multidict import CIMultiDict, MultiDict
from websockets.exceptions import InvalidState, ProtocolError
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, State
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
#: shared by every socket: websockets only reads them
_DEFLATE = [ServerPerMessageDeflateFactory()]
_SUBPROTOCOLS = list(CODECS)
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
    """websockets' server protocol, given the control frames aiohttp's reader parses.

    A close frame without a code is answered with 1000 on every wirehub
    transport (docs/protocol.md); websockets would echo it empty. What this
    turn gathered for the client goes out before the close reply.
    """

    empty_close = False
    owner: LeanSocket

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            if not frame.data and self.state is State.OPEN:
                self.empty_close = True
                frame = Frame(Opcode.CLOSE, Close(CloseCode.NORMAL, "").serialize())
            self.owner.before_close()
            super().recv_frame(frame)
            self.owner.peer_closed()
        else:
            super().recv_frame(frame)


class _Messages(WebSocketDataQueue):
    """Where aiohttp's frame reader puts each message: straight to the socket, in order.

    aiohttp's ``WebSocketReader`` parses frames (masking, fragments, control
    frames between fragments, reserved bits, opcodes, close payloads, sizes,
    permessage-deflate) and calls ``feed_data`` once per message or control
    frame. The queue's ``_protocol`` slot holds the :class:`LeanSocket`.
    """

    __slots__ = ()

    def feed_data(self, data: Any, size: int) -> None:
        self._protocol.on_message(data)

    def set_exception(self, exc: BaseException, exc_cause: BaseException | None = None) -> None:
        self._protocol.on_reader_error(exc)

    def feed_eof(self) -> None:
        pass


def _first_known(_ws: ServerProtocol, offered: Sequence[str]) -> Any:
    """The first subprotocol the client offers that wirehub speaks (its order, as aiohttp)."""
    return next((p for p in offered if p in CODECS), None)


class _Request:
    """What admission and connections read from a request, from the websockets one."""

    __slots__ = ("headers", "host", "path", "query", "remote", "secure", "transport")

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
    """One WebSocket (websockets' protocol, aiohttp's frame reader); the Connection's sink."""

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
            extensions=_DEFLATE if config.compression else None,
            subprotocols=_SUBPROTOCOLS if path == "/ws" else None,
            select_subprotocol=_first_known,  # none offered means JSON, as with aiohttp
            max_size=max_size,
            logger=_protocol_log,
        )
        self.ws.owner = self
        self.request: _Request | None = None
        self.conn: Connection | None = None
        self._echo: EchoGatherer | None = None
        self._reader: WebSocketReader | None = None  #: aiohttp's, once the handshake is done
        self._max_size = max_size
        self._inbox: deque[tuple[bytes | str, bool]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None  #: set while writing is paused
        self._gone: asyncio.Future[None] | None = None  #: done once the socket is closed
        self._close_code: int | None = None
        #: the peer's close frame, held while /ws requests that came before it are handled
        self._close_frame: Frame | None = None
        self._eof_after_close = False  #: the peer also ended its stream meanwhile

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is not None:
            reader.feed_data(data)  # messages go to on_message as they are parsed
            if self.ws.writes:
                self._write_out()
        elif self._raw is not None:
            self._request(data)
        # else: the handshake was refused, or the connection failed: nothing more is read

    def _request(self, data: bytes) -> None:
        """The first bytes: the whole request head (the front protocol waits for it)."""
        ws = self.ws
        self._raw += data
        end = data.find(b"\r\n\r\n") + 4
        ws.receive_data(data[:end] if end >= 4 else data)
        if ws.handshake_exc is not None:
            self._to_aiohttp()  # a request websockets finds malformed: aiohttp answers it
            return
        for event in ws.events_received():
            if isinstance(event, Request):
                self._raw = None
                self._handshake(event)
        if self._reader is not None and 4 <= end < len(data):
            self._reader.feed_data(data[end:])  # frames pipelined after the request
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
        if self._close_frame is not None:  # answered with the held close frame
            self._eof_after_close = True
            return True  # keep our half open until then
        self.ws.receive_eof()
        self._write_out()
        return None

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
        # websockets' handshake parser keeps the request (headers and all) in its frame
        # for the connection's life; a bare frame parser in its place keeps only what
        # receive_eof() needs (aiohttp's reader parses the frames). Fewer objects per
        # connection: less memory, and less for the garbage collector to walk.
        ws.parser = Protocol.parse(ws)
        next(ws.parser)
        if self._path == "/echo":
            server.admission.admitted(req)
            server.echo_sockets.add(self)
            self._echo = EchoGatherer(None if self.compress else self.transport)
        else:
            codec = CODECS.get(ws.subprotocol or "", JSON)
            head = b"".join(ws.data_to_send())  # the 101 response
            self.conn = conn = server.open_connection(self, req, codec, identity)
            if not conn.write_first(head):  # one write with the welcome, if it waits
                self.transport.write(head)
            self._inbox = deque()
            if server.node.app.connect_hooks:  # they run before any message is handled
                self._worker = asyncio.ensure_future(self._serve_inbox(first=True))
        self._reader = WebSocketReader(
            _Messages(self, 1, loop=asyncio.get_running_loop()),
            self._max_size + 1,  # aiohttp refuses a message of exactly its limit
            self.compress,
            False,  # text as bytes: /echo answers the bytes, /ws decodes them once
        )

    def _reject(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        response = self.ws.reject(status, text)
        for name, value in (headers or {}).items():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        self.ws.send_response(response)

    # -- messages in (called by aiohttp's reader, in order) --------------------------------
    def on_message(self, msg: Any) -> None:
        """One message or control frame, as aiohttp's ``WSMessage`` (type, data, extra)."""
        kind = msg[0]
        if kind is WSMsgType.TEXT:
            self._message(msg[1], False)
        elif kind is WSMsgType.BINARY:
            self._message(msg[1], True)
        else:
            self._control(kind, msg[1], msg[2])

    def _control(self, kind: WSMsgType, data: Any, extra: str) -> None:
        ws, conn = self.ws, self.conn
        if ws.close_rcvd is not None or ws.eof_sent or self._close_frame is not None:
            return  # after the peer's close frame, or a failure, nothing is read (RFC 6455 §1.4)
        if kind is WSMsgType.PING and conn is not None:
            conn.send_control(WSMsgType.PONG, data)  # /ws: at most one pong waits
            return
        if kind is WSMsgType.PONG:
            if conn is not None:
                conn.ping_sent_at = None
            return
        if kind is WSMsgType.CLOSE:  # the reader checked it; websockets keeps the handshake
            payload = b"" if data == 0 else data.to_bytes(2, "big") + extra.encode()
            frame = Frame(Opcode.CLOSE, payload)
            if self._worker is not None or (conn is not None and conn.sending_queued):
                # requests sent before it are answered, and replies waiting for a full
                # socket are sent, before the close reply, as on aiohttp (_serve_inbox)
                self._close_frame = frame
                if self._worker is None:
                    self._worker = asyncio.ensure_future(self._serve_inbox())
                return
        else:
            frame = Frame(Opcode.PING, data)  # /echo: websockets answers it
        self._recv_control(frame)

    def _recv_control(self, frame: Frame) -> None:
        ws = self.ws
        try:
            ws.recv_frame(frame)
        except ProtocolError as exc:  # a close code no peer may send (1006, 5000, ...)
            self._protocol_error(CloseCode.PROTOCOL_ERROR, str(exc))
        ws.events_received()

    def on_reader_error(self, exc: BaseException) -> None:
        """aiohttp's reader found a protocol error (or a handler here raised)."""
        if isinstance(exc, WebSocketError):
            self._protocol_error(exc.code, str(exc))
        else:
            log.error("WebSocket message handling failed", exc_info=exc)
            self._fail(CloseCode.INTERNAL_ERROR, "internal error")

    def _protocol_error(self, code: int, reason: str) -> None:
        if self.ws.state is State.OPEN:
            who = self.conn.client_id if self.conn is not None else "(echo)"
            log.info("client %s: protocol error: %s", who, reason)
        self._fail(code, reason)

    def _message(self, data: bytes, binary: bool) -> None:
        if self.ws.state is not State.OPEN or self._close_frame is not None:
            return  # closing: messages are no longer served
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
        if self.conn is None:
            return
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append((text if not binary else data, binary))
        if self._worker is None:
            self._worker = asyncio.ensure_future(self._serve_inbox())

    async def _serve_inbox(self, first: bool = False) -> None:
        """Handle queued messages in order; the task ends when the inbox is empty.

        The first run awaits the app's connect hooks before any message. A
        close frame that arrives while messages wait, or while replies wait for
        the socket to drain, is answered after them (at most 1 s for the latter).
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
            if self._close_frame is not None:  # replies behind a full socket still go
                await conn.finish_sending(timeout=1.0)
        finally:
            self._worker = None
        if self._close_frame is not None:
            self._answer_held_close()

    def _answer_held_close(self) -> None:
        """Answer the peer's close frame, held until the replies before it were sent."""
        close, self._close_frame = self._close_frame, None
        if close is None or self.conn is None or self.ws.eof_sent:
            return
        self._recv_control(close)
        if self._eof_after_close:
            self.ws.receive_eof()
        self._write_out()

    def before_close(self) -> None:
        """The peer's close frame is next: what this turn gathered goes before the reply."""
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
        if self.ws.eof_sent:
            return  # already failed or closed
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
        if ws.parser_exc is not None and self._close_code is None:
            # websockets reads no frames here (aiohttp's reader does): what it can meet is
            # the end of the stream, a peer gone without a close frame
            self._close_code = CloseCode.ABNORMAL
            if self.conn is not None:
                self.conn.close_code = self._close_code
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

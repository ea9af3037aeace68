"""Raw-socket tools for hostile input: HTTP requests and WebSocket frames no client would send.

Frames are built with websockets' sans-I/O ``Frame(...).serialize()`` (masking and
length encoding are its job) and then bent where RFC 6455 forbids: a reserved bit
set, a reserved opcode, a control frame fragmented or too long. What the server
sends back is parsed with websockets' sans-I/O ``ClientProtocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

HTTP_KEY_HEADERS = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True,
          rsv: int = 0) -> bytes:
    """One frame's bytes; ``rsv`` (bits 0b100=RSV1 .. 0b001=RSV3) and reserved opcodes allowed.

    A legal frame is serialized by websockets; the forbidden parts are patched into
    the first byte afterwards (RFC 6455 §5.2 layout: FIN RSV1 RSV2 RSV3 opcode).
    """
    try:
        legal = Opcode(opcode)
    except ValueError:  # reserved opcode: serialize a binary frame and patch the opcode in
        legal = Opcode.BINARY
    if legal in (Opcode.PING, Opcode.PONG, Opcode.CLOSE) and len(payload) > 125:
        legal = Opcode.BINARY  # serialize() refuses long control frames: patch the opcode in
    data = bytearray(Frame(legal, payload).serialize(mask=mask, extensions=[]))
    data[0] = (0x80 if fin else 0) | (rsv << 4) | opcode
    return bytes(data)


def text(payload: str | bytes, **kwargs: Any) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return frame(Opcode.TEXT, raw, **kwargs)


def frame_header(opcode: int, length: int, *, fin: bool = True) -> bytes:
    """Only the header of a masked frame announcing ``length`` payload bytes."""
    head = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    return head + b"\x00\x00\x00\x00"  # mask key


async def http_status(port: int, request: bytes, timeout: float) -> int | None:
    """Send raw bytes as an HTTP request; the status code answered (None: closed, no answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(timeout):
            line = await reader.readline()
        if not line:
            return None
        return int(line.split()[1])
    finally:
        writer.transport.abort()


def upgrade_request(port: int, path: str = "/ws", extra: str = "",
                    key_headers: str = HTTP_KEY_HEADERS) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{key_headers}{extra}\r\n"
            .encode("latin-1"))


class RawWS:
    """A /ws connection over a bare TCP stream: write any bytes, parse what comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 proto: ClientProtocol, timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.proto = proto
        self.timeout = timeout
        self.frames: list[Frame] = []
        self.response: Response | None = None
        self.eof = False

    @classmethod
    async def open(cls, port: int, timeout: float, path: str = "/ws",
                   headers: dict[str, str] | None = None) -> RawWS:
        """Handshake (it must succeed) and read the welcome frame."""
        proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = proto.connect()
        for name, value in (headers or {}).items():
            request.headers[name] = value
        proto.send_request(request)
        writer.write(b"".join(proto.data_to_send()))
        self = cls(reader, writer, proto, timeout)
        async with asyncio.timeout(timeout):
            while self.response is None:
                if self.eof:
                    raise ConnectionError("closed during the handshake")
                await self._feed()
        assert proto.handshake_exc is None, proto.handshake_exc
        if path == "/ws":
            welcome = await self.recv()
            assert welcome["op"] == "welcome", welcome
        return self

    async def _feed(self) -> None:
        data = await self.reader.read(65536)
        if data:
            self.proto.receive_data(data)
        else:
            self.eof = True
            self.proto.receive_eof()
        for event in self.proto.events_received():
            if isinstance(event, Response):
                self.response = event
            else:
                self.frames.append(event)
        self.proto.data_to_send()  # our own answers (pongs, close replies) are not sent

    async def next_frame(self) -> Frame | None:
        """The next frame from the server; None once the TCP connection is closed."""
        async with asyncio.timeout(self.timeout):
            while not self.frames:
                if self.eof:
                    return None
                await self._feed()
        return self.frames.pop(0)

    async def recv(self) -> dict[str, Any]:
        """The next data frame, decoded as JSON (server pings are skipped)."""
        while True:
            f = await self.next_frame()
            assert f is not None, "connection closed"
            if f.opcode in (Opcode.TEXT, Opcode.BINARY):
                return json.loads(f.data)
            assert f.opcode is not Opcode.CLOSE, Close.parse(f.data)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def send_json(self, obj: Any) -> None:
        self.writer.write(text(json.dumps(obj)))

    async def close_code(self) -> int | None:
        """Skip data frames until the server's close frame; its code (None: no close frame)."""
        while True:
            f = await self.next_frame()
            if f is None:
                return None
            if f.opcode is Opcode.CLOSE:
                return Close.parse(f.data).code

    async def data_until_close(self) -> tuple[list[dict[str, Any]], int | None]:
        """Every data frame before the close frame, decoded, and the close code."""
        out: list[dict[str, Any]] = []
        while True:
            f = await self.next_frame()
            if f is None:
                return out, None
            if f.opcode is Opcode.CLOSE:
                return out, Close.parse(f.data).code
            if f.opcode in (Opcode.TEXT, Opcode.BINARY):
                out.append(json.loads(f.data))

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.transport.abort()

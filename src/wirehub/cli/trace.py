"""``wirehub connect --trace``: the handshake and every frame, as they travel.

Built on websockets' sans-I/O client (``websockets.client.ClientProtocol``)
over a plain asyncio stream, so that nothing is hidden by a high-level API:

* the upgrade request and response, request/status line and every header
  (RFC 6455 §4.1, §4.2.2);
* each frame received, from ``events_received()``: a fragmented message shows
  as its text/binary frame then its continuation frames, and pings, pongs and
  close frames show too (RFC 6455 §5.4, §5.5);
* each frame sent, parsed back from ``data_to_send()`` with websockets' own
  ``Frame.parse``: our lines, the automatic pong to a ping (§5.5.3) and the
  close frame that answers the server's (§5.5.1) all appear.

Per frame: direction, opcode name, FIN, RSV bits when set, MASK for frames we
send (§5.3: a client masks every frame), payload length, a payload preview,
and for close frames the code and reason (§5.5.1, §7.4). permessage-deflate
is not offered, so the payloads shown are the bytes on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
from collections.abc import Generator
from typing import TextIO

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI, ProtocolError
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from .connect import StdinLines, stamp

__all__ = ["FrameTap", "describe", "trace"]

OPCODE_NAMES = {
    Opcode.CONT: "continuation",
    Opcode.TEXT: "text",
    Opcode.BINARY: "binary",
    Opcode.CLOSE: "close",
    Opcode.PING: "ping",
    Opcode.PONG: "pong",
}
PREVIEW = 60  #: characters of text (or bytes of hex) shown per frame


def _preview(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # binary, or a fragment that splits a character
        shown = data[:PREVIEW // 3].hex(" ")
        return f"0x {shown}" + (" ..." if len(data) > PREVIEW // 3 else "")
    shown = json.dumps(text[:PREVIEW], ensure_ascii=False)
    return shown + (f" ... (+{len(text) - PREVIEW} chars)" if len(text) > PREVIEW else "")


def describe(frame: Frame, *, masked: bool = False) -> str:
    """One line for a frame: opcode, FIN, RSV bits, MASK, length, payload or close code."""
    data = bytes(frame.data)
    parts = [f"{OPCODE_NAMES.get(frame.opcode, str(frame.opcode)):<12}",
             f"fin={int(frame.fin)}"]
    parts += [f"rsv{i}=1" for i, bit in ((1, frame.rsv1), (2, frame.rsv2), (3, frame.rsv3))
              if bit]
    if masked:
        parts.append("mask=1")
    parts.append(f"len={len(data)}")
    if frame.opcode is Opcode.CLOSE:
        if not data:
            parts.append("no status code (1005)")
        else:
            try:
                close = Close.parse(data)
            except (ProtocolError, UnicodeDecodeError) as exc:
                parts.append(f"invalid close payload ({exc}) {data.hex(' ')}")
            else:
                parts.append(f"code={Close(close.code, '')}")  # e.g. "1000 (OK)"
                parts.append(f"reason={json.dumps(close.reason, ensure_ascii=False)}")
    elif data:
        parts.append(_preview(data))
    return " ".join(parts)


class FrameTap:
    """Parses a byte stream into frames with websockets' own ``Frame.parse``.

    Used for what we send: ``data_to_send()`` hands us bytes, and parsing them
    back shows exactly the frames on the wire (fragments, pongs, close).
    """

    def __init__(self, *, mask: bool) -> None:
        self._reader = StreamReader()
        self._mask = mask
        self._frames: list[Frame] = []
        self._parser = self._parse()
        next(self._parser)

    def _parse(self) -> Generator[None, None, None]:
        while True:
            frame = yield from Frame.parse(self._reader.read_exact, mask=self._mask)
            self._frames.append(frame)

    def feed(self, data: bytes) -> list[Frame]:
        """Feed bytes; return the frames they completed."""
        self._reader.feed_data(data)
        next(self._parser)
        frames, self._frames = self._frames, []
        return frames


def _print_request(request: Request, out: TextIO) -> None:
    print(f"> GET {request.path} HTTP/1.1", file=out)
    for name, value in request.headers.raw_items():
        print(f"> {name}: {value}", file=out)
    print(">", file=out, flush=True)


def _print_response(response: Response, out: TextIO) -> None:
    print(f"< HTTP/1.1 {response.status_code} {response.reason_phrase}", file=out)
    for name, value in response.headers.raw_items():
        print(f"< {name}: {value}", file=out)
    print("<", file=out)
    if response.body:
        print(bytes(response.body).decode("utf-8", "replace").rstrip("\n"), file=out)
    out.flush()


class _Tracer:
    """Moves bytes between the socket and the sans-I/O protocol, printing both ways."""

    def __init__(self, protocol: ClientProtocol, writer: asyncio.StreamWriter,
                 out: TextIO) -> None:
        self.protocol = protocol
        self.writer = writer
        self.out = out
        self.tap = FrameTap(mask=True)
        self.handshake_sent = False
        self.response: Response | None = None
        self.answered = asyncio.Event()  #: set when the upgrade response or EOF arrived

    def note(self, text: str) -> None:
        print(f"{stamp()} * {text}", file=self.out, flush=True)

    def flush(self) -> None:
        """Write what the protocol wants sent; print the frames in it."""
        for chunk in self.protocol.data_to_send():
            if not chunk:  # SEND_EOF: half-close the TCP connection
                if self.writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        self.writer.write_eof()
                continue
            if self.handshake_sent:
                for frame in self.tap.feed(chunk):
                    print(f"{stamp()} > {describe(frame, masked=True)}", file=self.out,
                          flush=True)
            self.handshake_sent = True  # the first chunk is the HTTP request
            self.writer.write(chunk)

    def received(self, data: bytes) -> None:
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.response = event
                self.answered.set()
                _print_response(event, self.out)
            else:
                print(f"{stamp()} < {describe(event)}", file=self.out, flush=True)
        self.flush()

    def send_line(self, line: str, fragment: int) -> None:
        data = line.encode()
        if fragment <= 0 or len(data) <= fragment:
            self.protocol.send_text(data)
        else:  # RFC 6455 §5.4: first frame TEXT with FIN=0, then CONT frames
            chunks = [data[i:i + fragment] for i in range(0, len(data), fragment)]
            self.protocol.send_text(chunks[0], fin=False)
            for i, chunk in enumerate(chunks[1:], start=2):
                self.protocol.send_continuation(chunk, fin=i == len(chunks))
        self.flush()


async def trace(url: str, *, subprotocols: list[str], headers: list[tuple[str, str]],
                fragment: int = 0, close_timeout: float = 5.0,
                out: TextIO | None = None) -> int:
    """Run one traced session; return the exit status (0 after a 1000 close)."""
    out = out or sys.stdout
    try:
        uri = parse_uri(url)
    except InvalidURI as exc:
        print(f"wirehub connect: {exc}", file=sys.stderr)
        return 2
    protocol = ClientProtocol(uri, subprotocols=subprotocols or None,  # type: ignore[arg-type]
                              max_size=None)
    try:
        reader, writer = await asyncio.open_connection(
            uri.host, uri.port, ssl=ssl.create_default_context() if uri.secure else None)
    except OSError as exc:
        print(f"wirehub connect: cannot connect to {url}: {exc}", file=sys.stderr)
        return 1
    tracer = _Tracer(protocol, writer, out)
    request = protocol.connect()
    for name, value in headers:
        request.headers[name] = value
    protocol.send_request(request)
    _print_request(request, out)
    tracer.flush()

    async def pump() -> None:
        try:
            while protocol.state is not State.CLOSED:
                try:
                    data = await reader.read(65536)
                except OSError:
                    data = b""
                tracer.received(data)
                if not data:
                    return
        finally:
            tracer.answered.set()

    pumping = asyncio.ensure_future(pump())
    try:
        await tracer.answered.wait()
        if protocol.handshake_exc is not None or tracer.response is None:
            tracer.note(f"handshake failed: {protocol.handshake_exc or 'connection closed'}")
            return 1
        tracer.note("connected; each line is sent as a text message, Ctrl-D closes")
        await _converse(tracer, pumping, fragment, close_timeout)
    finally:
        pumping.cancel()
        writer.close()
    code, reason = protocol.close_code, protocol.close_reason
    tracer.note(f"connection closed: code {code}" + (f" reason {reason!r}" if reason else ""))
    return 0 if code == 1000 else 1


async def _converse(tracer: _Tracer, pumping: asyncio.Future[None], fragment: int,
                    close_timeout: float) -> None:
    protocol = tracer.protocol
    lines = StdinLines()
    while not pumping.done():
        getting = asyncio.ensure_future(lines.get())
        await asyncio.wait({getting, pumping}, return_when=asyncio.FIRST_COMPLETED)
        if not getting.done():
            getting.cancel()
            return
        line = getting.result()
        if protocol.state is not State.OPEN:
            break
        if line is None:
            protocol.send_close(1000)  # RFC 6455 §7.1.2: start the closing handshake
            tracer.flush()
            break
        tracer.send_line(line, fragment)
    try:
        await asyncio.wait_for(asyncio.shield(pumping), close_timeout)
    except TimeoutError:
        tracer.note(f"no TCP close from the server within {close_timeout:g} s; aborting")

"""Coalesced writes: a loop turn's frames for one socket go out in one ``write``.

Frames are serialized by the websockets library's sans-I/O ``Frame`` (RFC 6455
§5.2; server frames are unmasked) and gathered per socket; a single callback
per event-loop turn writes each socket's frames with one ``transport.write``.
No task, future or system call per message.

A broadcast hands the same payload object to every subscriber: the last
frame serialized is kept, so a fan-out serializes it once, not once per
subscriber.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from websockets.frames import Frame, Opcode

from ..core.codes import CloseCode

__all__ = ["FAST_LIMIT", "FLUSHER", "EchoGatherer", "Flushable", "frame"]

log = logging.getLogger("wirehub.connection")

#: transport buffer past which the fast path stops and the caller awaits a drain
FAST_LIMIT = 64 * 1024

_TEXT, _BINARY = Opcode.TEXT, Opcode.BINARY


class _LastFrame:
    __slots__ = ("binary", "frame", "payload")

    def __init__(self) -> None:
        self.payload: bytes | None = None
        self.binary = False
        self.frame = b""


_LAST = _LastFrame()


def frame(payload: bytes, binary: bool) -> bytes:
    """``payload`` as one unmasked text or binary frame (serialized by websockets)."""
    last = _LAST
    # identity, not equality: the cache holds a reference, so the id is not reused
    if last.payload is payload and last.binary is binary:
        return last.frame
    data = Frame(_BINARY if binary else _TEXT, payload).serialize(mask=False, extensions=[])
    last.payload, last.binary, last.frame = payload, binary, data
    return data


class Flushable(Protocol):
    client_id: str

    def flush(self) -> None: ...

    def close_soon(self, code: int, reason: str = "") -> None: ...


class _Flusher:
    """Writes every socket's gathered frames once per event-loop turn."""

    __slots__ = ("_loop", "_pending", "_scheduled")

    def __init__(self) -> None:
        self._pending: list[Flushable] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def schedule(self, sink: Flushable) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests, embedding): start afresh
            self._loop, self._pending, self._scheduled = loop, [], False
        self._pending.append(sink)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._scheduled = False
        for sink in pending:
            try:
                sink.flush()
            except Exception:  # one broken socket must not stop the others
                log.exception("client %s: write failed", sink.client_id)
                sink.close_soon(CloseCode.ABNORMAL, "write failed")


FLUSHER = _Flusher()


class EchoGatherer:
    """The fast write path of ``/echo``: gathers a loop turn's echoes for one socket."""

    __slots__ = ("_out", "_transport", "client_id")

    def __init__(self, transport: asyncio.Transport | None, client_id: str = "echo") -> None:
        self._transport = transport
        self._out: list[bytes] = []
        self.client_id = client_id

    def send(self, payload: bytes, binary: bool) -> bool:
        """Gather ``payload``; ``False`` when the socket backs up (send it the slow way)."""
        transport = self._transport
        if transport is None or transport.get_write_buffer_size() >= FAST_LIMIT:
            return False
        if not self._out:
            FLUSHER.schedule(self)
        self._out.append(Frame(_BINARY if binary else _TEXT, payload)
                         .serialize(mask=False, extensions=[]))
        return True

    def flush(self) -> None:
        out = self._out
        if not out:
            return
        self._out = []
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def close_soon(self, code: int, reason: str = "") -> None:
        self._out = []
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()

"""The coalesced write path: frames serialized by websockets, a broadcast's frame made once,
the handshake response in the welcome's write."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from websockets.frames import Frame, Opcode

from wirehub.core.codec import JSON
from wirehub.transport.coalesce import frame
from wirehub.transport.connection import Connection


def test_frame_is_the_websockets_serialization() -> None:
    for payload, binary in [(b"", False), (b"x" * 125, True), (b"y" * 126, False),
                            (b"z" * 70000, True)]:
        opcode = Opcode.BINARY if binary else Opcode.TEXT
        assert frame(payload, binary) == Frame(opcode, payload).serialize(mask=False,
                                                                           extensions=[])


def test_the_same_payload_object_is_serialized_once() -> None:
    payload = b'{"op":"message"}'
    first = frame(payload, False)
    assert frame(payload, False) is first  # the broadcast case: same object, same frame
    assert frame(payload, True) is not first and frame(payload, True)[0] == 0x82
    equal_copy = bytes(bytearray(payload))
    assert frame(equal_copy, False) == first  # equal bytes, separate object: still correct


class _Transport:
    """Records writes; its buffer is always empty (the fast path stays on)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


async def test_write_first_sends_the_handshake_response_and_the_welcome_in_one_write() -> None:
    """The lean transport's 101 goes out ahead of the welcome, in the same write."""
    transport = _Transport()
    request = SimpleNamespace(transport=transport, remote="127.0.0.1", headers={})
    conn = Connection(SimpleNamespace(compress=0), request, JSON, "c1",  # type: ignore[arg-type]
                      max_queue=1 << 20)
    conn.start()
    assert not conn.write_first(b"HTTP/1.1 101\r\n\r\n")  # nothing gathered: caller writes
    conn.send({"op": "welcome"})
    assert conn.write_first(b"HTTP/1.1 101\r\n\r\n")
    assert transport.writes == []  # nothing before the loop turn's flush
    flushed = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(flushed.set_result, None)  # after the flusher's
    await flushed
    assert transport.writes == [b"HTTP/1.1 101\r\n\r\n" + frame(b'{"op":"welcome"}', False)]

"""The coalesced write path: frames serialized by websockets, a broadcast's frame made once."""

from __future__ import annotations

from websockets.frames import Frame, Opcode

from wirehub.transport.coalesce import frame


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

"""The tracer's frame descriptions and its parser for outgoing bytes, without sockets."""

from __future__ import annotations

from websockets.frames import Close, Frame, Opcode

from wirehub.cli.trace import FrameTap, describe


def test_describe_data_frames():
    """Opcode name, FIN, MASK, length and a quoted preview of text."""
    assert describe(Frame(Opcode.TEXT, b"hello")) == 'text         fin=1 len=5 "hello"'
    line = describe(Frame(Opcode.CONT, b"x", fin=False), masked=True)
    assert line == 'continuation fin=0 mask=1 len=1 "x"'


def test_describe_binary_shows_hex():
    """Bytes that are not UTF-8 are shown in hex."""
    assert describe(Frame(Opcode.BINARY, b"\xff\x00\x01")).endswith("len=3 0x ff 00 01")


def test_describe_shows_rsv_bits_when_set():
    """RSV1-3 appear only when set (e.g. RSV1 for permessage-deflate, RFC 7692)."""
    assert "rsv1=1" in describe(Frame(Opcode.TEXT, b"", rsv1=True))
    assert "rsv" not in describe(Frame(Opcode.TEXT, b""))


def test_describe_close_frames():
    """A close frame shows its code, explanation and reason; an empty one says 1005."""
    line = describe(Frame(Opcode.CLOSE, Close(4500, "token revoked").serialize()))
    assert "code=4500 (private use)" in line and 'reason="token revoked"' in line
    assert "no status code (1005)" in describe(Frame(Opcode.CLOSE, b""))
    assert "invalid close payload" in describe(Frame(Opcode.CLOSE, b"\x03\xe7"))  # 999


def test_describe_shortens_long_payloads():
    """A long payload is cut to a preview that says how much was left out."""
    line = describe(Frame(Opcode.TEXT, b"a" * 1000))
    assert "len=1000" in line and "(+940 chars)" in line and len(line) < 150


def test_frame_tap_parses_what_a_client_sends():
    """Bytes a client serialises (masked) come back as the same frames, split anywhere."""
    frames = [Frame(Opcode.TEXT, b"hel", fin=False), Frame(Opcode.CONT, b"lo"),
              Frame(Opcode.PONG, b""), Frame(Opcode.CLOSE, Close(1000, "").serialize())]
    wire = b"".join(f.serialize(mask=True) for f in frames)
    tap = FrameTap(mask=True)
    parsed = [frame for i in range(0, len(wire), 3) for frame in tap.feed(wire[i:i + 3])]
    assert [(f.opcode, bytes(f.data), f.fin) for f in parsed] == \
        [(f.opcode, bytes(f.data), f.fin) for f in frames]

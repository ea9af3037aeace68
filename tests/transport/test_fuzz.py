"""Fuzzing /ws: arbitrary values, text, bytes and raw frames get error frames or documented closes.

One server serves the whole module; after every example it must still answer
/healthz and a ping on a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect as ws_connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri
from websockets.utils import apply_mask

from wirehub.apps import default_app
from wirehub.config import ServerConfig
from wirehub.core.codec import JSON, MSGPACK, Codec
from wirehub.core.codes import CloseCode, ErrorCode
from wirehub.core.envelope import CLIENT_OPS
from wirehub.core.state import ConnectionState
from wirehub.exceptions import RequestError
from wirehub.transport.runner import ServerRunner

pytestmark = pytest.mark.asyncio(loop_scope="module")

CODECS = {"json": JSON, "msgpack": MSGPACK}
#: close codes the server may send on its own (1005 and 1006 never travel on the wire)
DOCUMENTED_CLOSE = {int(c) for c in CloseCode} - {CloseCode.NO_STATUS, CloseCode.ABNORMAL}
#: what a valid request may be answered with
ANSWER_OPS = {"reply", "pong", "error", "message", "event", "join", "leave"}
ERROR_CODES = {str(c) for c in ErrorCode}
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

_sentinels = itertools.count()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fuzz_server() -> AsyncIterator[ServerRunner]:
    """One default-app server for every example of the module."""
    async with ServerRunner(default_app(), ServerConfig(port=0)) as runner:
        yield runner


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def assert_alive(runner: ServerRunner, http: aiohttp.ClientSession, unit: float) -> None:
    """The server answers /healthz and a ping from a brand-new client."""
    async with asyncio.timeout(unit):
        async with http.get(runner.url + "/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"
        async with ws_connect(runner.ws_url + "/ws", ping_interval=None) as ws:
            assert msgspec.json.decode(await ws.recv())["op"] == "welcome"
            await ws.send('{"op":"ping","id":"alive"}')
            assert msgspec.json.decode(await ws.recv()) == {"op": "pong", "id": "alive"}


async def exchange(runner: ServerRunner, codec: Codec, payload: str | bytes,
                   unit: float) -> tuple[list[dict[str, Any]], int | None]:
    """Send one frame, then a sentinel ping; return the frames before its pong and any close.

    The close code is None when the connection stayed open.
    """
    protocol = [codec.name]
    async with ws_connect(runner.ws_url + "/ws", subprotocols=protocol,  # type: ignore[arg-type]
                          ping_interval=None, open_timeout=unit, close_timeout=unit,
                          max_size=None) as ws:
        def decode(raw: str | bytes) -> dict[str, Any]:
            assert isinstance(raw, bytes) is codec.binary, raw
            return codec.decode_value(raw)

        async with asyncio.timeout(unit):
            assert decode(await ws.recv())["op"] == "welcome"
            sentinel = f"sentinel-{next(_sentinels)}"
            ping = codec.encode({"op": "ping", "id": sentinel})
            answers: list[dict[str, Any]] = []
            try:
                await ws.send(payload)
                await ws.send(ping if codec.binary else ping.decode())
                while (frame := decode(await ws.recv())) != {"op": "pong", "id": sentinel}:
                    answers.append(frame)
            except ConnectionClosed as exc:
                assert exc.rcvd is not None, f"dropped without a close frame after {payload!r}"
                return answers, exc.rcvd.code
    return answers, None


def check_answers(codec: Codec, payload: str | bytes, answers: list[dict[str, Any]],
                  close: int | None) -> None:
    """Invalid input gets exactly the codec's error; valid input only ordinary answers."""
    if close is not None:
        assert close in DOCUMENTED_CLOSE, (payload, close)
    expected = codec.decode(payload, binary=isinstance(payload, bytes))
    if isinstance(expected, RequestError):
        want: dict[str, Any] = {"op": "error", "code": expected.code, "message": expected.message}
        if expected.request_id is not None:
            want["id"] = expected.request_id
        assert answers == [want], payload
        return
    for frame in answers:
        assert frame.get("op") in ANSWER_OPS, (payload, frame)
        if frame["op"] == "error":  # never `internal`: fuzz input must not hit our bugs
            assert frame["code"] in ERROR_CODES - {"internal"}, (payload, frame)


# -- (a) values, text and bytes into /ws ----------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {"op": st.sampled_from([*sorted(CLIENT_OPS), "nope", "", "pong", "welcome"]) | values},
    optional={
        "id": st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=140)
        | values,
        "channel": st.sampled_from(["fuzz", "fuzz:x", "a b", "", "c" * 201]) | values,
        "type": st.sampled_from(["echo", "nope", ""]) | values,
        "data": values,
        "since": st.fixed_dictionaries({"offset": values, "epoch": values}) | values,
        "limit": values,
        "max_rate": values,
    },
)


@FUZZ
@given(value=st.one_of(values, requests), codec_name=st.sampled_from(sorted(CODECS)))
async def test_fuzz_values(fuzz_server: ServerRunner, http: aiohttp.ClientSession, unit: float,
                           value: Any, codec_name: str) -> None:
    """Arbitrary JSON-ish values and request-shaped objects get errors or ordinary answers."""
    codec = CODECS[codec_name]
    encoded = codec.encode(value)
    payload: str | bytes = encoded if codec.binary else encoded.decode()
    answers, close = await exchange(fuzz_server, codec, payload, unit)
    check_answers(codec, payload, answers, close)
    await assert_alive(fuzz_server, http, unit)


@st.composite
def mutated_requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """A request-shaped value encoded by a codec, then with a few bytes overwritten."""
    name = draw(st.sampled_from(sorted(CODECS)))
    data = bytearray(CODECS[name].encode(draw(requests)))
    for _ in range(draw(st.integers(1, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return name, bytes(data)


codec_names = st.sampled_from(sorted(CODECS))
raw_payloads = st.one_of(
    st.tuples(codec_names, st.text(max_size=300)),
    st.tuples(codec_names, st.binary(max_size=300)),
    mutated_requests(),
)


@FUZZ
@given(case=raw_payloads)
async def test_fuzz_text_and_bytes(fuzz_server: ServerRunner, http: aiohttp.ClientSession,
                                   unit: float, case: tuple[str, str | bytes]) -> None:
    """Arbitrary text, bytes and corrupted encodings get errors or ordinary answers."""
    codec_name, payload = case
    codec = CODECS[codec_name]
    answers, close = await exchange(fuzz_server, codec, payload, unit)
    check_answers(codec, payload, answers, close)
    await assert_alive(fuzz_server, http, unit)


# -- (b) raw frames over TCP ----------------------------------------------------------------


def raw_frame(fin: bool, rsv: int, opcode: int, masked: bool, payload: bytes) -> bytes:
    """Any frame at all, including ones RFC 6455 forbids (the fuzzer's input, not a parser)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if masked:
        key = os.urandom(4)
        return head + key + apply_mask(payload, key)
    return head + payload


close_payloads = st.builds(
    lambda code, reason: struct.pack("!H", code) + reason,
    st.integers(0, 65535) | st.sampled_from([1000, 1001, 1005, 1006, 1015, 3000, 4999]),
    st.binary(max_size=10) | st.text(max_size=10).map(str.encode),
)
payloads = st.binary(max_size=200) | st.sampled_from(
    [b'{"op":"ping","id":1}', b"{", b"[1]", b"\xff\xfe", b"x" * 126])


@st.composite
def frames(draw: st.DrawFn) -> tuple[int, bytes, bytes]:
    """(opcode, unmasked payload, the frame's bytes) of one arbitrary frame."""
    opcode = draw(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]) | st.integers(0, 15))
    payload = draw(close_payloads if opcode == 0x8 and draw(st.booleans()) else payloads)
    fin = draw(st.booleans() | st.just(True))
    rsv = draw(st.sampled_from([0, 0, 0, 1, 2, 4, 7]))
    masked = draw(st.booleans() | st.just(True))
    return opcode, payload, raw_frame(fin, rsv, opcode, masked, payload)


async def raw_session(runner: ServerRunner, frames_out: list[bytes],
                      unit: float) -> tuple[list[Frame], Exception | None]:
    """Handshake with the sans-I/O client, write raw frames, read until the server's EOF.

    After our frames comes a sentinel ping: once its pong (or a close) is back, every answer
    to our frames has been sent, and we close with 1000 so that the exchange always ends.
    Returns the frames the server sent (the sentinel's pong left out) and any error
    websockets found parsing them.
    """
    proto = ClientProtocol(parse_uri(runner.ws_url + "/ws"))
    reader, writer = await asyncio.open_connection(runner.host, runner.port)
    events: list[Any] = []
    sentinel = os.urandom(8)

    def frames_in() -> list[Frame]:
        return [e for e in events if isinstance(e, Frame)]

    async def read_more() -> bool:
        data = await reader.read(65536)
        if data:
            proto.receive_data(data)
        else:
            proto.receive_eof()
        events.extend(proto.events_received())
        return bool(data)

    try:
        proto.send_request(proto.connect())
        writer.write(b"".join(proto.data_to_send()))
        async with asyncio.timeout(unit):
            while not events:
                assert await read_more(), "server closed during the handshake"
            assert isinstance(events[0], Response) and proto.handshake_exc is None, events[0]
            writer.write(b"".join(frames_out) + raw_frame(True, 0, 0x9, True, sentinel))
            while not any(f.opcode is Opcode.CLOSE or (f.opcode is Opcode.PONG
                                                       and f.data == sentinel)
                          for f in frames_in()):
                if not await read_more():
                    break
            with contextlib.suppress(ConnectionError):
                writer.write(Frame(Opcode.CLOSE, struct.pack("!H", 1000)).serialize(mask=True))
            while await read_more():
                pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    received = [f for f in frames_in() if not (f.opcode is Opcode.PONG and f.data == sentinel)]
    return received, proto.parser_exc


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(frames(), min_size=1, max_size=6))
async def test_fuzz_raw_frames(fuzz_server: ServerRunner, http: aiohttp.ClientSession,
                               unit: float, sequence: list[tuple[int, bytes, bytes]]) -> None:
    """Random frames (reserved opcodes, RSV bits, no mask, fragments) get errors or a close."""
    received, parser_exc = await raw_session(fuzz_server, [f for _, _, f in sequence], unit)
    assert parser_exc is None, f"the server sent a frame websockets refuses: {parser_exc}"
    assert received, "the server sent nothing, not even the welcome"
    welcome = received.pop(0)
    assert welcome.opcode is Opcode.TEXT and JSON.decode_value(welcome.data)["op"] == "welcome"
    closes = [f for f in received if f.opcode is Opcode.CLOSE]
    assert len(closes) == 1, f"not exactly one close frame from the server: {received}"
    assert received[-1] is closes[0], "the server sent frames after its close"
    code = struct.unpack("!H", closes[0].data[:2])[0] if len(closes[0].data) >= 2 else None
    # the code of a close frame we sent may come back (RFC 6455 §5.5.1)
    echoed = {struct.unpack("!H", p[:2])[0] for op, p, _ in sequence if op == 0x8 and len(p) >= 2}
    assert code in DOCUMENTED_CLOSE | {c for c in echoed if 3000 <= c <= 4999}, code
    for frame in received[:-1]:
        if frame.opcode is Opcode.PONG:
            continue  # the answer to one of our pings (RFC 6455 §5.5.3)
        assert frame.opcode is Opcode.TEXT, frame
        answer = JSON.decode_value(frame.data)
        if answer["op"] == "pong":  # our one valid request, {"op":"ping","id":1}
            assert answer == {"op": "pong", "id": 1}
        else:
            assert answer["op"] == "error", answer
            assert answer["code"] in ERROR_CODES - {"internal"}, answer
    await assert_alive(fuzz_server, http, unit)


async def test_no_connection_leaks_after_fuzzing(fuzz_server: ServerRunner,
                                                 http: aiohttp.ClientSession, unit: float) -> None:
    """After all that the server is healthy and holds no connection it should have dropped."""
    await assert_alive(fuzz_server, http, unit)
    pending = []
    for conn in list(fuzz_server.server.connections):  # closes finishing in the background
        done = asyncio.Event()
        conn.state.add_listener(lambda _old, new, done=done: new is ConnectionState.CLOSED
                                and done.set())
        if conn.state.state is not ConnectionState.CLOSED:
            pending.append(done.wait())
    async with asyncio.timeout(unit):
        await asyncio.gather(*pending)
    assert not fuzz_server.server.connections
    assert fuzz_server.node.hub.client_count == 0

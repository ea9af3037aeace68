"""Frames in: what arrives together with the handshake or after a close frame.

These run on every transport (``make test`` runs the suite on each); on the
default one, ``lean``, websockets parses the request head and aiohttp's
compiled reader every frame after it.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

import wirehub
from wirehub.apps import default_app
from wirehub.config import ServerConfig
from wirehub.core.codes import CloseCode
from wirehub.core.state import ConnectionState
from wirehub.transport import lean
from wirehub.transport.runner import ServerRunner

from ..security.wire import RawWS, frame, text


async def _read_frames(reader: asyncio.StreamReader, proto: ClientProtocol,
                       count: int) -> tuple[Response | None, list[Frame]]:
    response: Response | None = None
    frames: list[Frame] = []
    while len(frames) < count:
        data = await reader.read(65536)
        if not data:
            break
        proto.receive_data(data)
        for event in proto.events_received():
            if isinstance(event, Response):
                response = event
            else:
                frames.append(event)
    return response, frames


@pytest.mark.parametrize("path", ["/ws", "/echo"])
async def test_frames_in_the_same_write_as_the_handshake_are_answered(
        server: ServerRunner, unit: float, path: str) -> None:
    """A client that pipelines its first messages behind the upgrade request is served."""
    proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{server.port}{path}"), max_size=None)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        proto.send_request(proto.connect())
        first = [text('{"op":"ping","id":1}'), text('{"op":"ping","id":2}')]
        writer.write(b"".join(proto.data_to_send()) + b"".join(first))
        want = 3 if path == "/ws" else 2  # /ws: welcome, then the two pongs
        async with asyncio.timeout(unit):
            response, frames = await _read_frames(reader, proto, want)
        assert response is not None and response.status_code == 101
        got = [json.loads(f.data) for f in frames]
        if path == "/ws":
            assert got[0]["op"] == "welcome"
            assert got[1:] == [{"op": "pong", "id": 1}, {"op": "pong", "id": 2}]
        else:
            assert got == [{"op": "ping", "id": 1}, {"op": "ping", "id": 2}]
    finally:
        writer.transport.abort()


async def test_what_follows_the_close_frame_is_not_served(server: ServerRunner,
                                                          unit: float) -> None:
    """Data after the peer's close frame is discarded (RFC 6455 §1.4); what came before is not."""
    raw = await RawWS.open(server.port, unit)
    try:
        raw.send(text('{"op":"ping","id":"before"}')
                 + frame(Opcode.CLOSE, Close(CloseCode.NORMAL, "bye").serialize())
                 + text('{"op":"ping","id":"after"}'))
        frames, code = await raw.data_until_close()
        assert frames == [{"op": "pong", "id": "before"}]
        assert code == CloseCode.NORMAL
    finally:
        raw.abort()


async def test_an_invalid_close_code_from_the_client_closes_1002(server: ServerRunner,
                                                                 unit: float) -> None:
    """1006 and 5000 may not be sent on the wire (RFC 6455 §7.4): a protocol error."""
    for code in (1006, 5000):
        raw = await RawWS.open(server.port, unit)
        try:
            raw.send(frame(Opcode.CLOSE, code.to_bytes(2, "big")))
            assert await raw.close_code() == CloseCode.PROTOCOL_ERROR, code
        finally:
            raw.abort()


def test_the_lean_transport_reads_frames_with_aiohttps_compiled_reader() -> None:
    """The reader is aiohttp's Cython one when aiohttp ships it (the speed depends on it)."""
    import aiohttp.helpers

    if aiohttp.helpers.NO_EXTENSIONS:
        pytest.skip("AIOHTTP_NO_EXTENSIONS is set: aiohttp's pure-Python reader is in use")
    assert lean.WebSocketReader.__module__ == "aiohttp._websocket.reader_c"


async def test_requests_before_a_close_and_end_of_stream_are_answered(unit: float) -> None:
    """A client that sends its last request, a close frame and FIN in one go still gets
    its reply, then the close reply, even when the request is still being handled when
    the FIN arrives (its half of TCP is closed; ours stays open until then)."""
    app = wirehub.App("test")
    release = asyncio.Event()

    @app.on("slow")
    async def slow(conn: Any, data: Any) -> Any:
        await release.wait()
        return data

    async with ServerRunner(app, ServerConfig(port=0)) as server:
        raw = await RawWS.open(server.port, unit)
        try:
            raw.send(text('{"op":"send","type":"slow","id":1,"data":"done"}')
                     + frame(Opcode.CLOSE, Close(CloseCode.GOING_AWAY, "").serialize()))
            raw.writer.write_eof()
            (conn,) = server.server.connections
            sink = conn._ws
            if isinstance(sink, lean.LeanSocket):  # wait until the FIN is in, then answer
                async with asyncio.timeout(unit):
                    while not sink._eof_after_close:
                        await asyncio.sleep(0.001)
            release.set()
            frames, code = await raw.data_until_close()
            assert frames == [{"op": "reply", "id": 1, "result": "done"}]
            assert code == CloseCode.GOING_AWAY
        finally:
            raw.abort()


async def test_replies_behind_a_full_socket_go_before_the_close_reply(unit: float) -> None:
    """A subscriber that stopped reading and then closes still gets what was queued for it
    (RFC 6455 §5.5.1: the close reply comes after the data already on its way)."""
    config = ServerConfig(port=0, max_messages_per_second=1e6, max_bytes_per_second=1e9)
    async with ServerRunner(default_app(), config) as server:
        sub = await RawWS.open(server.port, unit)
        (conn,) = server.server.connections
        pub = await RawWS.open(server.port, unit)
        try:
            sub.send_json({"op": "subscribe", "id": 1, "channel": "backlog"})
            assert (await sub.recv())["op"] == "reply"
            data, sent = "x" * 1024, 0

            async def publish() -> None:
                nonlocal sent
                pub.send_json({"op": "publish", "id": sent, "channel": "backlog", "data": data})
                answer = await pub.recv()
                assert answer["op"] == "reply", answer
                sent += 1

            async with asyncio.timeout(unit * 4):
                while not conn.sending_queued:  # the subscriber does not read: its socket fills
                    await publish()
                for _ in range(20):  # a few more behind the full socket
                    await publish()
            assert conn.sending_queued
            sub.send(frame(Opcode.CLOSE, Close(CloseCode.NORMAL, "").serialize()))
            frames, code = await sub.data_until_close()
            offsets = [f["offset"] for f in frames if f["op"] == "message"]
            assert offsets == list(range(offsets[0], offsets[0] + sent))
            assert code == CloseCode.NORMAL
        finally:
            sub.abort()
            pub.abort()


async def test_a_peer_gone_without_a_close_frame_counts_as_1006(server: ServerRunner,
                                                                unit: float) -> None:
    """A dropped TCP connection is an abnormal closure (1006), not a protocol error."""
    raw = await RawWS.open(server.port, unit)
    (conn,) = server.server.connections
    closed = asyncio.Event()
    conn.state.add_listener(lambda _old, new: new is ConnectionState.CLOSED and closed.set())
    raw.writer.close()  # FIN, no close frame
    async with asyncio.timeout(unit):
        await closed.wait()  # the code is counted in the same step (Sessions.close_connection)
    assert server.server.node.stats.close_codes == {CloseCode.ABNORMAL: 1}


async def test_no_handshake_parser_or_request_is_kept_per_connection(server: ServerRunner,
                                                                    unit: float) -> None:
    """websockets' handshake parser keeps the request (and its headers) in its frame for the
    connection's life; the lean transport swaps it for a bare frame parser after the
    handshake (less memory, less for every full garbage collection to walk)."""
    raws = [await RawWS.open(server.port, unit) for _ in range(3)]
    try:
        gc.collect()
        handshake_parsers = [o for o in gc.get_objects() if inspect.isgenerator(o)
                             and o.gi_code is ServerProtocol.parse.__code__]
        assert handshake_parsers == []
        assert len(server.server.connections) == 3
    finally:
        for raw in raws:
            raw.writer.close()

"""The client's websockets boundary: URLs, frame decoding, error translation."""

from __future__ import annotations

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.frames import Close
from websockets.http11 import Response

from wirehub.client.wire import (
    FrameDecoder,
    closed_from,
    normalize_url,
    should_retry,
    translate,
)
from wirehub.core.codec import JSON, MSGPACK
from wirehub.core.envelope import Error, MessagePush, Pong, Reply, Welcome
from wirehub.exceptions import ConfigError, ConnectionClosed, HandshakeError


@pytest.mark.parametrize(("given", "expected"), [
    ("ws://127.0.0.1:8765", "ws://127.0.0.1:8765/ws"),
    ("ws://127.0.0.1:8765/", "ws://127.0.0.1:8765/ws"),
    ("ws://127.0.0.1:8765/ws", "ws://127.0.0.1:8765/ws"),
    ("http://example.com:80", "ws://example.com:80/ws"),
    ("https://example.com/hub/ws?token=x", "wss://example.com/hub/ws?token=x"),
    ("WS://Host:1/custom", "ws://Host:1/custom"),
])
def test_normalize_url_accepts_base_and_full_urls(given, expected):
    """A base URL gets /ws, a full one is kept, http(s) becomes ws(s)."""
    assert normalize_url(given) == expected


@pytest.mark.parametrize("bad", ["ftp://x/ws", "127.0.0.1:8765", "ws://", ""])
def test_normalize_url_refuses_other_urls(bad):
    """Anything but a ws/wss/http/https URL with a host is a ConfigError naming url."""
    with pytest.raises(ConfigError) as info:
        normalize_url(bad)
    assert info.value.key == "url"


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=lambda c: c.name)
def test_decoder_reads_every_server_frame(codec):
    """welcome, reply, error, pong and message decode into the shared envelopes."""
    decoder = FrameDecoder(codec)
    frames = [
        Welcome(client="c1", node="n1", ping_interval=20),
        Reply(id=3, result={"offset": 7}),
        Error(id="x", code="bad_request", message="nope"),
        Pong(id=4),
        MessagePush(channel="news", data=[1], offset=2, epoch="e", from_="c2", ts=5),
    ]
    for frame in frames:
        assert decoder.decode(codec.encode(frame)) == frame


def test_decoder_returns_unknown_ops_as_plain_values():
    """A push the client does not know (a later protocol addition) is not an error."""
    decoded = FrameDecoder(JSON).decode(b'{"op":"join","channel":"room","client":"c9"}')
    assert decoded == {"op": "join", "channel": "room", "client": "c9"}


def test_translate_refused_upgrade_to_handshake_error():
    """A non-101 answer becomes HandshakeError with the status and the body text."""
    response = Response(400, "Bad Request", Headers(), b"unsupported subprotocol x\n")
    exc = translate(InvalidStatus(response), "ws://h/ws")
    assert isinstance(exc, HandshakeError)
    assert (exc.status, exc.body) == (400, "unsupported subprotocol x")


def test_translate_network_errors_to_retryable_connection_closed():
    """Connection refused and timeouts are ConnectionClosed without a code, retryable."""
    for error in (ConnectionRefusedError(111, "Connection refused"), TimeoutError()):
        exc = translate(error, "ws://h/ws")
        assert isinstance(exc, ConnectionClosed)
        assert exc.code is None and not exc.final and should_retry(exc)


def test_translate_bad_uri_to_config_error():
    """websockets' InvalidURI is the caller's setting: ConfigError on url."""
    assert isinstance(translate(InvalidURI("x", "bad"), "x"), ConfigError)


@pytest.mark.parametrize(("code", "final"), [
    (1000, True), (1001, False), (1008, True), (1009, True), (1011, False),
    (1012, False), (4000, False), (4499, False), (4500, True), (4999, True),
])
def test_closed_from_received_close_frame(code, final):
    """The server's close code decides final versus retryable (core.codes.is_retryable)."""
    exc = closed_from(Close(code, "why"), None)
    assert (exc.code, exc.reason, exc.final) == (code, "why", final)


def test_closed_without_close_frame_is_retryable():
    """No close frame at all (TCP dropped, RFC 6455 §7.1.5) is retryable with code None."""
    exc = closed_from(None, None)
    assert exc.code is None and not exc.final


def test_closed_by_us_is_final():
    """When we closed, the code is the one we sent and the close is final."""
    exc = closed_from(None, Close(1000, "bye"), closing=True)
    assert (exc.code, exc.final) == (1000, True)


@pytest.mark.parametrize(("status", "retry"), [(400, False), (401, False), (403, False),
                                               (429, True), (500, True), (503, True)])
def test_should_retry_handshake_by_status(status, retry):
    """Overload and server errors are retried; a refusal (4xx) is final."""
    assert should_retry(HandshakeError(status)) is retry

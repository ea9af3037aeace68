"""The client's boundary with ``websockets``: open, decode, translate errors.

Everything that touches the ``websockets`` library for the protocol client is
here, so that :mod:`wirehub.client.client` only deals in wirehub types:

* :func:`open_connection` performs the opening handshake (RFC 6455 §4.1) and
  waits for the server's ``welcome``;
* :class:`FrameDecoder` turns server frames into the shared envelopes of
  :mod:`wirehub.core.envelope`;
* :func:`translate` and :func:`closed_from` turn ``websockets`` exceptions into
  :class:`~wirehub.exceptions.HandshakeError` and
  :class:`~wirehub.exceptions.ConnectionClosed` (``raise ... from exc``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from ..core.codec import CODECS, JSON, Codec
from ..core.codes import is_retryable
from ..core.envelope import Error, MessagePush, Pong, Reply, Welcome
from ..exceptions import ConfigError, ConnectionClosed, HandshakeError, WirehubError

__all__ = [
    "RETRYABLE_HTTP_STATUS",
    "FrameDecoder",
    "ServerFrame",
    "Session",
    "closed_from",
    "normalize_url",
    "open_connection",
    "should_retry",
    "translate",
]

log = logging.getLogger("wirehub.client")

#: every frame the server sends on /ws (tagged on ``op``)
ServerFrame = Welcome | Reply | Error | Pong | MessagePush

#: HTTP answers to the upgrade worth retrying: overload, draining, a proxy in between
RETRYABLE_HTTP_STATUS = frozenset({429, 500, 502, 503, 504})


def normalize_url(url: str) -> str:
    """``ws://host:port`` or ``http://host:port`` -> ``ws://host:port/ws``.

    A URL with a path other than ``/`` is kept as given; ``http(s)`` becomes
    ``ws(s)``.
    """
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ConfigError("url", url, "a ws://, wss://, http:// or https:// URL with a host")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


class FrameDecoder:
    """Decodes server frames for one subprotocol; unknown ops come back as dicts."""

    __slots__ = ("_decode", "_decode_any")

    def __init__(self, codec: Codec) -> None:
        if codec.binary:
            self._decode = msgspec.msgpack.Decoder(ServerFrame).decode
            self._decode_any = msgspec.msgpack.Decoder().decode
        else:
            self._decode = msgspec.json.Decoder(ServerFrame).decode
            self._decode_any = msgspec.json.Decoder().decode

    def decode(self, payload: bytes | str) -> ServerFrame | Any:
        """The envelope, or the plain value when the frame is not one we know.

        Raises :class:`msgspec.DecodeError` only for a payload that is not
        JSON / MessagePack at all.
        """
        try:
            return self._decode(payload)
        except msgspec.ValidationError:
            return self._decode_any(payload)


@dataclass(slots=True)
class Session:
    """One open protocol connection: the socket, its codec, and the welcome."""

    ws: ClientConnection
    codec: Codec
    decoder: FrameDecoder
    welcome: Welcome


def translate(exc: BaseException, url: str) -> WirehubError:
    """A wirehub exception for a failure to open ``url`` (raise it ``from exc``)."""
    if isinstance(exc, websockets.InvalidStatus):
        response = exc.response
        body = bytes(response.body).decode("utf-8", "replace").strip()
        return HandshakeError(response.status_code, body)
    if isinstance(exc, websockets.InvalidURI):
        return ConfigError("url", url, "a valid ws:// or wss:// URL")
    if isinstance(exc, websockets.InvalidMessage):
        # no valid HTTP response: usually the peer closed mid-handshake
        return ConnectionClosed(None, f"invalid handshake response: {exc}")
    if isinstance(exc, websockets.InvalidHandshake):
        # a 101 answer that breaks RFC 6455 §4.1 (bad Accept, unknown subprotocol...)
        return HandshakeError(101, str(exc))
    if isinstance(exc, websockets.ConnectionClosed):
        return closed_from(exc.rcvd, exc.sent)
    if isinstance(exc, TimeoutError):
        return ConnectionClosed(None, f"cannot connect to {url}: opening handshake timed out")
    if isinstance(exc, OSError):
        return ConnectionClosed(None, f"cannot connect to {url}: {exc.strerror or exc}")
    return ConnectionClosed(None, f"cannot connect to {url}: {exc!r}")


def closed_from(rcvd: Any, sent: Any, *, closing: bool = False) -> ConnectionClosed:
    """ConnectionClosed for a finished connection, from websockets' close frames.

    The code is the one the server sent; the one we sent if we closed first
    (``closing``); ``None`` when no close frame came (RFC 6455 §7.1.5: 1006).
    """
    if rcvd is not None:
        code, reason = int(rcvd.code), rcvd.reason
    elif closing and sent is not None:
        code, reason = int(sent.code), sent.reason
    else:
        code, reason = None, "connection lost" if sent is None else f"sent {sent}"
    return ConnectionClosed(code, reason, final=closing or not is_retryable(code))


def should_retry(exc: WirehubError) -> bool:
    """Whether a failed connection attempt is worth another try."""
    if isinstance(exc, HandshakeError):
        return exc.status in RETRYABLE_HTTP_STATUS
    if isinstance(exc, ConnectionClosed):
        return not exc.final
    return False


async def open_connection(
    url: str,
    *,
    subprotocol: str,
    headers: Mapping[str, str] | None,
    open_timeout: float,
    options: Mapping[str, Any],
) -> Session:
    """Open a protocol v1 connection and wait for the ``welcome`` frame.

    Raises :class:`HandshakeError`, :class:`ConnectionClosed` or
    :class:`ConfigError`; never a ``websockets`` exception.
    """
    try:
        ws = await ws_connect(
            url,
            subprotocols=[subprotocol],  # type: ignore[list-item]
            additional_headers=dict(headers or {}),
            open_timeout=open_timeout,
            **options,
        )
    except (websockets.WebSocketException, OSError, TimeoutError) as exc:
        raise translate(exc, url) from exc
    try:
        codec = CODECS.get(ws.subprotocol or subprotocol, JSON)
        decoder = FrameDecoder(codec)
        async with asyncio.timeout(open_timeout):
            payload = await ws.recv(decode=False)
        try:
            frame = decoder.decode(payload)
        except msgspec.DecodeError:
            frame = None
        if not isinstance(frame, Welcome):
            shown = bytes(payload[:80]).decode("utf-8", "replace")
            await ws.close(1002, "expected welcome")  # RFC 6455 §7.4.1: protocol error
            raise HandshakeError(101, f"expected a welcome frame first, got {shown!r}")
        return Session(ws, codec, decoder, frame)
    except websockets.ConnectionClosed as exc:
        raise closed_from(exc.rcvd, exc.sent) from exc
    except TimeoutError as exc:
        ws.transport.abort()
        raise ConnectionClosed(None, f"no welcome from {url} within {open_timeout:g} s") from exc
    except BaseException:
        ws.transport.abort()
        raise

"""Codecs for the two v1 subprotocols, and turning raw frames into requests.

``wirehub.v1.json`` travels in text frames, ``wirehub.v1.msgpack`` in binary
frames; both carry the same fields. Decoding never raises on bad input: it
returns a :class:`~wirehub.exceptions.RequestError` that names the field at
fault, ready to be answered with an ``error`` frame.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..exceptions import RequestError
from .codes import ErrorCode
from .envelope import CLIENT_OPS, Request

__all__ = ["CODECS", "JSON", "MSGPACK", "Codec", "carry_check", "codec_for"]



def _usable_id(rid: Any) -> int | str | None:
    """The request id to repeat in an error, if it is one a reply could carry."""
    if isinstance(rid, bool):
        return None
    if isinstance(rid, int) and abs(rid) < 2**53:
        return rid
    if isinstance(rid, str) and len(rid) <= 128:
        return rid
    return None


class Codec:
    """Encodes server frames and decodes client requests for one subprotocol."""

    __slots__ = ("_decode_any", "_decoder", "_encode", "binary", "name")

    def __init__(self, name: str, *, binary: bool) -> None:
        self.name = name
        self.binary = binary
        if binary:
            self._encode = msgspec.msgpack.Encoder().encode
            self._decoder = msgspec.msgpack.Decoder(Request)
            self._decode_any = msgspec.msgpack.Decoder().decode
        else:
            self._encode = msgspec.json.Encoder().encode
            self._decoder = msgspec.json.Decoder(Request)
            self._decode_any = msgspec.json.Decoder().decode

    def __repr__(self) -> str:
        return f"<Codec {self.name}>"

    def encode(self, obj: Any) -> bytes:
        """Encode an envelope (or any plain value) into frame payload bytes."""
        return self._encode(obj)

    def decode_value(self, payload: bytes | str) -> Any:
        """Decode a payload into plain Python values (no validation)."""
        return self._decode_any(payload)

    def decode(self, payload: bytes | str, *, binary: bool) -> Request | RequestError:
        """Decode one client frame into a request, or the error to answer with."""
        if self.binary and not binary:
            return RequestError(ErrorCode.BAD_REQUEST, f"{self.name} expects binary frames")
        try:
            return self._decoder.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError,
                RecursionError) as exc:
            return self._explain(payload, exc)

    def _explain(self, payload: bytes | str, exc: Exception) -> RequestError:
        """Work out which error code fits a frame that failed to decode."""
        try:
            value = self._decode_any(payload)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as inner:
            kind = "MessagePack" if self.binary else "JSON"
            return RequestError(ErrorCode.BAD_REQUEST, f"malformed {kind}: {inner}")
        if not isinstance(value, dict):
            return RequestError(
                ErrorCode.BAD_REQUEST,
                f"a request must be an object, got {type(value).__name__}",
            )
        rid = _usable_id(value.get("id"))
        op = value.get("op")
        if "op" not in value:
            return RequestError(
                ErrorCode.BAD_REQUEST, "object missing required field `op`", request_id=rid
            )
        if isinstance(op, str) and op not in CLIENT_OPS:
            shown = op if len(op) <= 40 else op[:40] + "..."
            return RequestError(
                ErrorCode.UNKNOWN_OP,
                f"unknown op {shown!r}; known ops: {', '.join(sorted(CLIENT_OPS))}",
                request_id=rid,
            )
        if isinstance(exc, RecursionError):
            return RequestError(ErrorCode.BAD_REQUEST, "nested too deeply", request_id=rid)
        return RequestError(ErrorCode.BAD_REQUEST, str(exc), request_id=rid)


def carry_check(data: Any, source: Codec) -> RequestError | None:
    """Whether ``data`` decoded by ``source`` can be encoded by every other codec.

    A JSON integer past 64 bits has no MessagePack form; a MessagePack extension
    type or a map with array keys has no JSON form. Refusing such a publish up
    front keeps one subscriber's codec from failing a broadcast half-way.
    """
    for codec in CODECS.values():
        if codec is not source:
            try:
                codec.encode(data)
            except (TypeError, ValueError, OverflowError) as exc:
                return RequestError(
                    ErrorCode.BAD_REQUEST,
                    f"data cannot be carried to {codec.name} subscribers: {exc}",
                )
    return None


JSON = Codec("wirehub.v1.json", binary=False)
MSGPACK = Codec("wirehub.v1.msgpack", binary=True)
CODECS: dict[str, Codec] = {JSON.name: JSON, MSGPACK.name: MSGPACK}


def codec_for(subprotocol: str | None) -> Codec:
    """The codec of a negotiated subprotocol (JSON when none was negotiated)."""
    return CODECS.get(subprotocol or "", JSON)

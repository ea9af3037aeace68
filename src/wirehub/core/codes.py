"""Close codes and error codes of protocol v1, with what each tells a client.

Close codes (RFC 6455 §7.4.1 for 1000-1015; §7.4.2 leaves 4000-4999 to
applications). wirehub splits its private range in two so that a client can
decide without a table of every code:

* 4000-4499: retryable. The client reconnects with backoff and recovers.
* 4500-4999: final. The client stops and reports the reason.

1006 never travels on the wire (RFC 6455 §7.1.5); a client uses it for a
connection lost without a close frame, which is retryable.
"""

from __future__ import annotations

import enum

__all__ = ["CloseCode", "ErrorCode", "is_retryable", "valid_close_code"]


class CloseCode(enum.IntEnum):
    """Close codes the server sends, and how a client should treat them."""

    NORMAL = 1000  #: final: the peer is done.
    GOING_AWAY = 1001  #: retryable: server shutting down or draining.
    PROTOCOL_ERROR = 1002  #: final: the peer broke RFC 6455.
    UNSUPPORTED_DATA = 1003  #: final: a frame type the endpoint does not take.
    NO_STATUS = 1005  #: never sent; a close frame without a code.
    ABNORMAL = 1006  #: never sent; connection lost without a close frame (retryable).
    INVALID_PAYLOAD = 1007  #: final: e.g. invalid UTF-8 in a text frame.
    POLICY_VIOLATION = 1008  #: final: e.g. kept flooding after ``rate_limited``.
    MESSAGE_TOO_BIG = 1009  #: final: a message over the size limit.
    INTERNAL_ERROR = 1011  #: retryable: the server hit a bug or lost a dependency.
    SERVICE_RESTART = 1012  #: retryable: the server is restarting.
    TRY_AGAIN_LATER = 1013  #: retryable: overloaded, come back later.

    SLOW_CONSUMER = 4000  #: retryable: the outbound buffer overflowed (client too slow).
    HEARTBEAT_TIMEOUT = 4001  #: retryable: no pong within the ping timeout.
    FORCE_RECONNECT = 4002  #: retryable: server asks the client to reconnect.
    INSUFFICIENT_STATE = 4003  #: retryable: the node may have missed messages; recover.

    UNAUTHORIZED = 4500  #: final: missing or invalid credentials.
    TOKEN_EXPIRED = 4501  #: final: the token expired and was not refreshed.
    FORBIDDEN = 4502  #: final: the client may not use this server.
    BAD_REQUEST = 4503  #: final: the client keeps breaking protocol v1.


_RETRYABLE_STANDARD = frozenset({1001, 1005, 1006, 1011, 1012, 1013})


def is_retryable(code: int | None) -> bool:
    """Whether a client should reconnect after a close with ``code``.

    ``None`` (no close frame at all, e.g. the TCP connection dropped) is retryable.
    """
    if code is None or code in _RETRYABLE_STANDARD:
        return True
    return 4000 <= code <= 4499


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` frame: what went wrong with one request."""

    BAD_REQUEST = "bad_request"  #: malformed frame, wrong field type, invalid value.
    UNKNOWN_OP = "unknown_op"  #: no such op, or no handler for a ``send`` type.
    NOT_FOUND = "not_found"  #: the thing named does not exist.
    FORBIDDEN = "forbidden"  #: not allowed for this client.
    UNAUTHORIZED = "unauthorized"  #: authentication needed or failed.
    TOO_LARGE = "too_large"  #: a payload or a count over a limit.
    RATE_LIMITED = "rate_limited"  #: too many messages or bytes per second.
    INTERNAL = "internal"  #: our bug; the server log has the traceback.


def valid_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame (RFC 6455 §7.4.1, §7.4.2)."""
    if 3000 <= code <= 4999:
        return True
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)

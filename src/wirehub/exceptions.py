"""wirehub's exceptions: one tree, each carrying fields and building its text.

.. code-block:: text

    WirehubError
    ├── RequestError            a request was refused (code + message); raised by
    │                           app handlers to answer with an ``error`` frame, and
    │                           by the client when the server answered ``error``
    ├── RequestTimeout          the client waited too long for a reply
    ├── ConnectionClosed        the connection is closed (code, reason, final?)
    ├── HandshakeError          the server refused the WebSocket upgrade
    ├── InvalidStateTransition  an illegal state machine transition (our bug)
    ├── BrokerError             the broker failed (translated at the boundary)
    └── ConfigError             a setting is invalid (names the key)

Whose fault: a peer's bad input becomes an ``error`` frame or a close code and
is never raised out of the server; our own bugs are logged with a traceback and
answered with ``internal``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BrokerError",
    "ConfigError",
    "ConnectionClosed",
    "HandshakeError",
    "InvalidStateTransition",
    "RequestError",
    "RequestTimeout",
    "WirehubError",
]


class WirehubError(Exception):
    """Base class of every exception wirehub raises."""


class RequestError(WirehubError):
    """A request failed with a protocol error ``code`` and a human ``message``."""

    def __init__(self, code: str, message: str, *, request_id: Any = None) -> None:
        super().__init__(code, message)
        self.code = str(code)
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class RequestTimeout(WirehubError):
    """No reply to request ``op`` (id ``request_id``) within ``timeout`` seconds."""

    def __init__(self, op: str, request_id: Any, timeout: float) -> None:
        super().__init__(op, request_id, timeout)
        self.op = op
        self.request_id = request_id
        self.timeout = timeout

    def __str__(self) -> str:
        return f"no reply to {self.op!r} (id {self.request_id!r}) within {self.timeout:g} s"


class ConnectionClosed(WirehubError):
    """The connection closed with ``code`` and ``reason``; ``final`` means no reconnect."""

    def __init__(self, code: int | None, reason: str = "", *, final: bool = False) -> None:
        super().__init__(code, reason, final)
        self.code = code
        self.reason = reason
        self.final = final

    def __str__(self) -> str:
        kind = "final" if self.final else "retryable"
        code = "no close code" if self.code is None else f"code {self.code}"
        reason = f" ({self.reason})" if self.reason else ""
        return f"connection closed: {code}{reason}, {kind}"


class HandshakeError(WirehubError):
    """The server answered the upgrade request with HTTP ``status`` instead of 101."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body

    def __str__(self) -> str:
        tail = f": {self.body}" if self.body else ""
        return f"handshake refused with HTTP {self.status}{tail}"


class InvalidStateTransition(WirehubError):
    """Event ``event`` is not allowed in state ``state``."""

    def __init__(self, state: Any, event: Any) -> None:
        super().__init__(state, event)
        self.state = state
        self.event = event

    def __str__(self) -> str:
        return f"event {getattr(self.event, 'name', self.event)} is not allowed in state " \
               f"{getattr(self.state, 'name', self.state)}"


class BrokerError(WirehubError):
    """The broker could not do ``action``."""

    def __init__(self, action: str, detail: str = "") -> None:
        super().__init__(action, detail)
        self.action = action
        self.detail = detail

    def __str__(self) -> str:
        return f"broker failed to {self.action}" + (f": {self.detail}" if self.detail else "")


class ConfigError(WirehubError):
    """Setting ``key`` has an invalid value; ``allowed`` says what would do."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(key, value, allowed)
        self.key = key
        self.value = value
        self.allowed = allowed

    def __str__(self) -> str:
        return f"invalid setting {self.key}={self.value!r}: expected {self.allowed}"

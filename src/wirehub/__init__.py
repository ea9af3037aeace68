"""wirehub: a real-time WebSocket hub, its Python client and CLI."""

from __future__ import annotations

from .app import App
from .core.codes import CloseCode, ErrorCode, is_retryable
from .core.state import ConnectionState
from .exceptions import (
    BrokerError,
    ConfigError,
    ConnectionClosed,
    HandshakeError,
    InvalidStateTransition,
    RequestError,
    RequestTimeout,
    WirehubError,
)

__version__ = "0.1.0"

__all__ = [
    "App",
    "BrokerError",
    "CloseCode",
    "ConfigError",
    "ConnectionClosed",
    "ConnectionState",
    "ErrorCode",
    "HandshakeError",
    "InvalidStateTransition",
    "RequestError",
    "RequestTimeout",
    "WirehubError",
    "__version__",
    "is_retryable",
]

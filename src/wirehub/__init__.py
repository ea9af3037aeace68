"""wirehub: a real-time WebSocket hub, its Python client and CLI."""

from __future__ import annotations

from .app import App
from .client import Client, Subscription, connect
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


def run(app: App, *, host: str = "127.0.0.1", port: int = 8765, **settings: object) -> int:
    """Serve ``app`` until SIGTERM or SIGINT (settings: :class:`wirehub.config.ServerConfig`)."""
    from .cli.serve import run_app
    from .config import ServerConfig

    return run_app(app, ServerConfig(host=host, port=port, **settings))  # type: ignore[arg-type]

__all__ = [
    "App",
    "BrokerError",
    "Client",
    "CloseCode",
    "ConfigError",
    "ConnectionClosed",
    "ConnectionState",
    "ErrorCode",
    "HandshakeError",
    "InvalidStateTransition",
    "RequestError",
    "RequestTimeout",
    "Subscription",
    "WirehubError",
    "__version__",
    "connect",
    "is_retryable",
    "run",
]

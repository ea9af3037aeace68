"""Server settings with their defaults (flags map onto these fields)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerConfig"]

MiB = 1024 * 1024


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    node_name: str | None = None
    broker: str = "memory://"
    #: largest message accepted on /ws; bigger ones close with 1009
    max_message_size: int = 1 * MiB
    #: largest message accepted on the raw /echo endpoint
    echo_max_message_size: int = 16 * MiB + 1024
    #: bytes queued for one client before it counts as a slow consumer (close 4000)
    max_queue: int = 1 * MiB
    #: seconds between server pings; 0 disables
    ping_interval: float = 20.0
    #: seconds to wait for a pong before closing with 4001
    ping_timeout: float = 20.0
    #: seconds a graceful shutdown may take in all
    shutdown_timeout: float = 4.0
    #: permessage-deflate (RFC 7692) when the client offers it
    compression: bool = True
    #: delay before unsubscribing the broker from a channel with no local subscriber
    unsubscribe_delay: float = 1.0

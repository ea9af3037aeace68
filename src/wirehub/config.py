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
    #: on SIGTERM, client closes (1001) are spread at random over this many seconds
    drain_period: float = 2.0
    #: worker processes sharing the port (SO_REUSEPORT); more than one needs Redis
    workers: int = 1
    #: bind with SO_REUSEPORT (set for each worker of --workers)
    reuse_port: bool = False
    #: permessage-deflate (RFC 7692) when the client offers it
    compression: bool = True
    #: delay before unsubscribing the broker from a channel with no local subscriber
    unsubscribe_delay: float = 1.0

    # -- security (docs/security.md) -------------------------------------------------
    #: HS256 secret; with it (or a public key) every client must authenticate
    jwt_secret: str | None = None
    #: PEM file with the RS256/ES256 public key
    jwt_public_key: str | None = None
    #: accept ``?token=`` in the URL (tokens in URLs end up in logs: off by default)
    allow_query_token: bool = False
    #: seconds a client without a token may take to send its ``connect`` frame
    connect_timeout: float = 10.0
    #: seconds before expiry at which the server asks the client for a new token
    refresh_ahead: float = 30.0
    #: Origins allowed to open WebSockets; None: the server's own host only; "*": any
    allowed_origins: tuple[str, ...] | None = None
    #: TLS certificate chain and key: serve https and wss
    certfile: str | None = None
    keyfile: str | None = None
    #: connections in total / from one IP address (HTTP 503 / 429 beyond)
    max_connections: int = 10_000
    max_connections_per_ip: int = 1_000
    #: per connection: messages and bytes per second (token buckets, burst = 2 s worth)
    max_messages_per_second: float = 200.0
    max_bytes_per_second: float = 2 * MiB
    #: rate-limited messages in a row before the connection is closed with 1008
    rate_limit_strikes: int = 20
    #: channels one connection may subscribe to
    max_subscriptions: int = 1_000
    #: arrays/objects nested deeper than this in a JSON frame are refused
    max_json_depth: int = 32
    #: seconds to complete the HTTP upgrade request (slowloris); also HTTP keep-alive idle
    handshake_timeout: float = 10.0

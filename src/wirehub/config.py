"""Every server setting in one place, and where its value comes from.

Precedence, lowest first: the defaults below < the TOML file (``--config
wirehub.toml``) < ``WIREHUB_<NAME>`` environment variables < command-line
flags (``--name-with-dashes``). ``wirehub config`` prints the result with
secrets masked. A bad value stops start-up with a :class:`ConfigError`
naming the key and what it accepts.

Each field's metadata says how to show and parse it: ``help``, ``group``,
``kind`` (``size`` accepts 64KiB/1MiB, ``list`` comma-separated), ``choices``,
``secret``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .exceptions import ConfigError

__all__ = ["ServerConfig", "describe", "load_config", "parse_size", "reference"]

MiB = 1024 * 1024


def _f(default: Any, help: str, group: str = "server", **meta: Any) -> Any:
    return field(default=default, metadata={"help": help, "group": group, **meta})


@dataclass(slots=True)
class ServerConfig:
    host: str = _f("127.0.0.1", "address to bind")
    port: int = _f(8765, "port to bind, 0 for any free port")
    node_name: str | None = _f(None, "this node's name (default: host-pid)")
    broker: str = _f("memory://", "broker URL: memory:// or redis://HOST:PORT/DB")
    workers: int = _f(1, "worker processes sharing the port (SO_REUSEPORT); more than one "
                      "needs a shared broker")
    log_level: str = _f("info", "log level", choices=("debug", "info", "warning", "error"))
    log_format: str = _f("text", "log lines as text or JSON", choices=("text", "json"))
    max_message_size: int = _f(1 * MiB, "largest /ws message; bigger ones close with 1009",
                               "limits", kind="size")
    echo_max_message_size: int = _f(16 * MiB + 1024, "largest /echo message", "limits",
                                    kind="size")
    max_queue: int = _f(1 * MiB, "outbound bytes queued per client before the namespace's "
                        "slow-consumer policy applies (default policy: close 4000)", "limits",
                        kind="size")
    ping_interval: float = _f(20.0, "seconds between server pings, 0 disables")
    ping_timeout: float = _f(20.0, "seconds to wait for a pong before closing with 4001")
    shutdown_timeout: float = _f(4.0, "seconds a graceful shutdown may take in all")
    drain_period: float = _f(2.0, "on SIGTERM, spread the clients' 1001 closes over this many "
                             "seconds")
    compression: bool = _f(True, "negotiate permessage-deflate (RFC 7692)")
    unsubscribe_delay: float = _f(1.0, "seconds before the broker stops delivering a channel "
                                  "with no local subscriber")
    transport: str = _f("lean", "what carries WebSockets: lean (websockets' handshake and "
                        "writes, aiohttp's compiled frame reader, no aiohttp object per "
                        "connection: faster, less memory) or aiohttp (aiohttp's "
                        "WebSocketResponse); docs/performance.md",
                        choices=("lean", "aiohttp"))
    reuse_port: bool = _f(False, "bind with SO_REUSEPORT (set for each --workers child)",
                          hidden=True)
    # -- security (docs/security.md) ----------------------------------------------------
    jwt_secret: str | None = _f(None, "HS256 secret: clients must authenticate", "security",
                                secret=True)
    jwt_public_key: str | None = _f(None, "PEM file with the RS256/ES256 public key",
                                    "security")
    jwt_audience: str | None = _f(None, "tokens must carry this aud claim (default: aud "
                                  "not checked)", "security")
    jwt_issuer: str | None = _f(None, "tokens must carry this iss claim (default: iss not "
                                "checked)", "security")
    allow_query_token: bool = _f(False, "also accept ?token= in the URL (tokens in URLs "
                                 "reach logs)", "security")
    connect_timeout: float = _f(10.0, "seconds a client without a token has to send its "
                                "connect frame", "security")
    refresh_ahead: float = _f(30.0, "seconds before expiry at which the server asks for a new "
                              "token", "security")
    allowed_origins: tuple[str, ...] | None = _f(None, "Origins allowed to open WebSockets, "
                                                 "comma-separated, or '*' (default: the "
                                                 "server's own host)", "security", kind="list")
    certfile: str | None = _f(None, "TLS certificate chain (PEM): serve https and wss",
                              "security")
    keyfile: str | None = _f(None, "TLS private key (PEM)", "security")
    max_connections: int = _f(10_000, "connections in total; beyond: HTTP 503", "limits")
    max_connections_per_ip: int = _f(1_000, "connections from one address; beyond: HTTP 429",
                                     "limits")
    max_messages_per_second: float = _f(200.0, "per connection; beyond: rate_limited, then "
                                        "1008", "limits")
    max_bytes_per_second: float = _f(2 * MiB, "per connection", "limits", kind="size")
    rate_limit_strikes: int = _f(20, "rate-limited messages in a row before closing with "
                                 "1008", "limits")
    max_subscriptions: int = _f(1_000, "channels per connection", "limits")
    max_json_depth: int = _f(32, "nesting depth of JSON frames", "limits")
    history_max_bytes: int = _f(16 * MiB, "memory broker: all channels' history together "
                                "(past it the oldest messages of the largest go first)",
                                "limits", kind="size")
    handshake_timeout: float = _f(10.0, "seconds to send the upgrade request (slowloris); "
                                  "also the HTTP keep-alive idle time", "limits")
    # -- operations (docs/operations.md) ----------------------------------------------------
    api_key: str | None = _f(None, "key for the HTTP API (/api/*): 'Authorization: Bearer "
                             "KEY'; unset: the API is off", "operations", secret=True)
    admin_token: str | None = _f(None, "token for /admin and `wirehub top`; unset: off",
                                 "operations", secret=True)
    metrics: bool = _f(True, "serve Prometheus metrics at /metrics", "operations")
    # -- built-in stock feed (default app) ------------------------------------------------
    stocks_rate: float = _f(1000.0, "ticks per second across all symbols", "stocks")
    stocks_seed: int | None = _f(None, "seed for a reproducible simulated market", "stocks")
    stocks_csv: str | None = _f(None, "replay ticks from this CSV file instead", "stocks")
    stocks_symbols: tuple[str, ...] | None = _f(None, "comma-separated symbols to trade "
                                                "(default: all)", "stocks", kind="list")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                raise ConfigError(f.name, value, "one of " + ", ".join(choices))
        for name in ("port", "workers", "max_message_size", "max_queue",
                     "max_connections", "max_connections_per_ip", "max_subscriptions",
                     "max_json_depth", "rate_limit_strikes"):
            if getattr(self, name) < (0 if name == "port" else 1):
                raise ConfigError(name, getattr(self, name),
                                  "an integer >= 0" if name == "port" else "an integer >= 1")
        if not 0 <= self.port <= 65535:
            raise ConfigError("port", self.port, "0 to 65535")
        for name in ("ping_interval", "ping_timeout", "drain_period", "shutdown_timeout"):
            if getattr(self, name) < 0:
                raise ConfigError(name, getattr(self, name), "a number of seconds >= 0")
        for name in ("max_messages_per_second", "max_bytes_per_second", "stocks_rate",
                     "connect_timeout", "handshake_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, getattr(self, name), "a number > 0")


def parse_size(text: str | int | float) -> int:
    """A byte size: 1048576, "64KiB", "1MiB", "16M"."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return int(text)
    t = str(text).strip().lower().removesuffix("b").removesuffix("i")
    mult = 1
    for suffix, m in (("k", 1024), ("m", MiB), ("g", 1024 * MiB)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    return int(float(t) * mult)


def _field_type(f: Any) -> str:
    t = str(f.type)
    for name in ("bool", "int", "float"):
        if t.startswith(name):
            return name
    return "list" if f.metadata.get("kind") == "list" else "str"


def coerce(name: str, value: Any) -> Any:
    """Turn a value from TOML, the environment or a flag into the field's type."""
    f = _FIELDS.get(name)
    if f is None:
        raise ConfigError(name, value, "a known setting: " + ", ".join(sorted(_FIELDS)))
    kind = f.metadata.get("kind") or _field_type(f)
    try:
        if value is None or (isinstance(value, str) and value == "" and f.default is None):
            return None
        if kind == "size":
            return parse_size(value)
        if kind == "list":
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
        if kind == "bool":
            if isinstance(value, bool):
                return value
            low = str(value).strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        allowed = {"size": "a size such as 1048576, 64KiB or 1MiB",
                   "list": "a comma-separated list", "bool": "true or false",
                   "int": "an integer", "float": "a number"}.get(kind, "a string")
        raise ConfigError(name, value, allowed) from None


_FIELDS = {f.name: f for f in fields(ServerConfig)}


def load_config(
    flags: Mapping[str, Any] | None = None,
    *,
    file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerConfig:
    """Defaults < TOML ``file`` < ``WIREHUB_*`` in ``env`` < ``flags`` (None = not given)."""
    values: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(Path(file).read_text())
        except OSError as exc:
            raise ConfigError("config", str(file), f"a readable TOML file ({exc.strerror})"
                              ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", str(file), f"valid TOML ({exc})") from exc
        table = data.get("server", data)  # [server] table, or top-level keys
        for key, value in table.items():
            values[key.replace("-", "_")] = coerce(key.replace("-", "_"), value)
    for key, value in (os.environ if env is None else env).items():
        if key.startswith("WIREHUB_") and key != "WIREHUB_TEST_TIMEOUT_SCALE":
            name = key[len("WIREHUB_"):].lower()
            if name in _FIELDS:
                values[name] = coerce(name, value)
    for key, value in (flags or {}).items():
        if value is not None:
            values[key] = coerce(key, value)
    return replace(ServerConfig(), **values) if values else ServerConfig()


def describe(config: ServerConfig) -> str:
    """The effective configuration as TOML, secrets masked."""
    lines = ["[server]"]
    group = "server"
    order = ["server", "limits", "security", "operations", "stocks"]
    for f in sorted(fields(config), key=lambda f: order.index(f.metadata["group"])):
        if f.metadata.get("hidden"):
            continue
        if f.metadata["group"] != group:
            group = f.metadata["group"]
            lines.append(f"# -- {group}")
        value = getattr(config, f.name)
        if f.metadata.get("secret") and value:
            shown = '"***"'
        elif value is None:
            lines.append(f"# {f.name} = (unset)  # {f.metadata['help']}")
            continue
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, tuple):
            shown = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        elif isinstance(value, str):
            shown = f'"{value}"'
        else:
            shown = repr(value)
        lines.append(f"{f.name} = {shown}")
    return "\n".join(lines) + "\n"


def reference() -> str:
    """Every setting as a Markdown table: key, flag, environment variable, default, meaning."""
    order = ["server", "limits", "security", "operations", "stocks"]
    lines = ["| setting (TOML key) | flag | environment | default | meaning |",
             "| --- | --- | --- | --- | --- |"]
    for f in sorted(fields(ServerConfig), key=lambda f: order.index(f.metadata["group"])):
        if f.metadata.get("hidden"):
            continue
        default = "unset" if f.default is None else f.default
        if f.metadata.get("kind") == "size" and isinstance(default, int):
            default = f"{default} ({default / MiB:g} MiB)" if default >= MiB else default
        choices = f.metadata.get("choices")
        meaning = f.metadata["help"] + (f" ({' / '.join(choices)})" if choices else "")
        flag = "--" + f.name.replace("_", "-")
        if str(f.type).startswith("bool"):
            flag += f" / --no-{f.name.replace('_', '-')}"
        lines.append(f"| `{f.name}` | `{flag}` | `WIREHUB_{f.name.upper()}` | `{default}` "
                     f"| {meaning} |")
    return "\n".join(lines) + "\n"

"""Brokers carry publications between nodes and keep channel history."""

from .base import Broker, Publication, StreamPosition
from .memory import MemoryBroker

__all__ = ["Broker", "MemoryBroker", "Publication", "StreamPosition", "create_broker"]


def create_broker(url: str | None, *, history_max_bytes: int = 16 * 1024 * 1024) -> Broker:
    """A broker from a URL: ``memory://`` (or None) in-process, ``redis://`` shared."""
    if url in (None, "", "memory", "memory://"):
        return MemoryBroker(history_max_bytes=history_max_bytes)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisBroker

        return RedisBroker(url)
    from ..exceptions import ConfigError

    raise ConfigError("broker", url, "memory:// or redis://HOST:PORT/DB")

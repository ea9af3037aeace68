"""Brokers carry publications between nodes and keep channel history."""

from .base import Broker, Publication, StreamPosition
from .memory import MemoryBroker

__all__ = ["Broker", "MemoryBroker", "Publication", "StreamPosition", "create_broker"]


def create_broker(url: str | None) -> Broker:
    """A broker from a URL: ``memory://`` (or None) is the in-process broker."""
    if url in (None, "", "memory", "memory://"):
        return MemoryBroker()
    from ..exceptions import ConfigError

    raise ConfigError("broker", url, "memory://")

"""The broker contract every backend fulfils (memory now, Redis later).

"Append to history and publish" is one atomic step per channel, so that every
node sees a channel's messages in the same order with the same offsets. The
broker calls the node's handler for every publication on a channel the node
subscribed to, in offset order.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["Broker", "Handler", "Publication", "StreamPosition"]


class Publication(msgspec.Struct, frozen=True):
    """One message in a channel's stream."""

    channel: str
    data: Any
    offset: int  #: grows by one per message in the channel, starting at 1
    epoch: str  #: changes whenever the channel's history is lost
    client: str | None  #: publishing client id, None for server code
    ts: int  #: milliseconds since the Unix epoch, set by the broker


class StreamPosition(msgspec.Struct, frozen=True):
    """Where a channel's stream is: the last offset given out, and the epoch."""

    offset: int
    epoch: str


Handler = Callable[[Publication], None]


class Broker(abc.ABC):
    """Between nodes: publish, subscribe per channel, history positions."""

    _handler: Handler | None = None

    def set_handler(self, handler: Handler) -> None:
        """Called with every publication on channels this node subscribed to."""
        self._handler = handler

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect; the default does nothing."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Disconnect and release resources; the default does nothing."""

    @abc.abstractmethod
    async def publish(self, channel: str, data: Any, *, client: str | None = None) -> Publication:
        """Append to the channel's history and deliver to subscribed nodes, atomically."""

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Start delivering the channel's publications to this node."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering the channel's publications to this node."""

    @abc.abstractmethod
    async def position(self, channel: str) -> StreamPosition:
        """The channel's current top offset and epoch."""

    @property
    def healthy(self) -> bool:
        """False while the broker cannot deliver (e.g. Redis unreachable)."""
        return True

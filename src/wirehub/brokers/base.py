"""The broker contract every backend fulfils (memory now, Redis later).

"Append to history and publish" is one atomic step per channel, so that every
node sees a channel's messages in the same order with the same offsets. The
broker calls the node's handler for every publication and event on a channel
the node subscribed to, in offset order. Presence lives in the broker too, so
that every node sees every node's clients.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol

import msgspec

__all__ = ["Broker", "BrokerHandler", "History", "Publication", "StreamPosition"]


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


class History(msgspec.Struct, frozen=True):
    """Publications from a channel's history, oldest first, and the stream position.

    ``complete`` is true when nothing is missing between the ``since`` offset
    asked for and the first publication returned (always true without ``since``).
    """

    publications: list[Publication]
    offset: int
    epoch: str
    complete: bool = True


class BrokerHandler(Protocol):
    def on_publication(self, pub: Publication) -> None:
        """A publication on a channel this node subscribed to, in offset order."""

    def on_event(self, channel: str, event: dict[str, Any]) -> None:
        """An ephemeral event (join, leave, typing...) on a subscribed channel."""


class Broker(abc.ABC):
    """Between nodes: publish, subscribe per channel, history, presence."""

    _handler: BrokerHandler | None = None

    def set_handler(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect; the default does nothing."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Disconnect and release resources; the default does nothing."""

    @property
    def healthy(self) -> bool:
        """False while the broker cannot deliver (e.g. Redis unreachable)."""
        return True

    # -- streams ------------------------------------------------------------------------
    @abc.abstractmethod
    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        client: str | None = None,
        history_size: int = 300,
        history_ttl: float = 120.0,
        size: int = 0,
    ) -> Publication:
        """Append to the channel's bounded history and deliver, atomically.

        ``size`` is the payload's approximate encoded size when the caller knows
        it (a client's frame), for brokers that budget history memory.
        """

    @abc.abstractmethod
    async def publish_event(self, channel: str, event: dict[str, Any]) -> None:
        """Deliver an ephemeral event to subscribed nodes; not kept in history."""

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Start delivering the channel's publications and events to this node."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering the channel's publications and events to this node."""

    @abc.abstractmethod
    async def position(self, channel: str) -> StreamPosition:
        """The channel's current top offset and epoch."""

    @abc.abstractmethod
    async def history(
        self, channel: str, *, since: int | None = None, limit: int | None = None
    ) -> History:
        """Retained publications: after offset ``since`` (oldest first, at most
        ``limit``), or without ``since`` the newest ``limit`` of them."""

    async def lease(self, name: str, holder: str, ttl: float) -> bool:
        """Hold lease ``name`` for ``ttl`` seconds (take it, or renew it if ours).

        For work one node of many must do alone, such as running a feed. The
        in-process default: always granted.
        """
        return True

    async def release(self, name: str, holder: str) -> None:
        """Give lease ``name`` up at once if ``holder`` holds it (another may take it now).

        The in-process default holds nothing to give up.
        """
        return None

    async def announce(self, node: str, info: dict[str, Any], ttl: float) -> None:
        """Publish this node's summary for ``ttl`` seconds (admin view of the cluster)."""
        self._nodes = {**getattr(self, "_nodes", {}), node: info}

    async def nodes(self) -> dict[str, dict[str, Any]]:
        """The summaries of every node alive on this broker."""
        return dict(getattr(self, "_nodes", {}))

    # -- presence -------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_presence(self, channel: str, client: str, entry: dict[str, Any]) -> None:
        """Record that ``client`` is in ``channel`` with ``entry`` (client, user, info)."""

    @abc.abstractmethod
    async def remove_presence(self, channel: str, client: str) -> None:
        """Forget ``client`` in ``channel``."""

    @abc.abstractmethod
    async def presence(self, channel: str) -> dict[str, dict[str, Any]]:
        """Client id -> entry, for every client present in ``channel`` on any node."""

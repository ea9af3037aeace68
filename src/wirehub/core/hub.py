"""The local hub: which of this node's clients listen on which channel.

The hub is sans-I/O. A subscriber is anything with ``client_id``, ``codec``
and a non-blocking ``deliver(payload, binary)``; the transport provides it.
A broadcast encodes the push once per codec in use, never once per subscriber.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Protocol

from .codec import Codec

log = logging.getLogger("wirehub.hub")

__all__ = ["Hub", "Subscriber"]


class Subscriber(Protocol):
    client_id: str
    codec: Codec

    def deliver(self, payload: bytes, binary: bool, channel: str | None = None) -> None:
        """Queue an already-encoded frame; never blocks."""


class Hub:
    """Channel -> local subscribers, and the client registry of one node."""

    __slots__ = ("_channels", "_clients", "_floors", "_recovering", "bytes_out")

    def __init__(self) -> None:
        self._channels: dict[str, dict[str, Subscriber]] = {}
        self._clients: dict[str, Subscriber] = {}
        # (channel, client id) -> pushes held back while the client recovers
        self._recovering: dict[tuple[str, str], list[Any]] = {}
        # (channel, client id) -> (epoch, offset) the client already has: later copies
        # of older messages (pub/sub lagging behind a history read) are dropped
        self._floors: dict[tuple[str, str], tuple[Any, int]] = {}
        #: payload bytes handed to subscribers by broadcast (for metrics)
        self.bytes_out = 0

    # -- clients -------------------------------------------------------------
    def add_client(self, client: Subscriber) -> None:
        self._clients[client.client_id] = client

    def remove_client(self, client: Subscriber, channels: list[str]) -> list[str]:
        """Forget a client subscribed to ``channels``; return those it left empty."""
        self._clients.pop(client.client_id, None)
        return [channel for channel in channels if self.unsubscribe(channel, client)]

    def client(self, client_id: str) -> Subscriber | None:
        return self._clients.get(client_id)

    def clients(self) -> Iterator[Subscriber]:
        return iter(list(self._clients.values()))

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # -- channels ------------------------------------------------------------
    def subscribe(self, channel: str, client: Subscriber, *, hold: bool = False) -> bool:
        """Add a subscriber; True if it is the channel's first one on this node.

        With ``hold``, pushes for it are kept back (not encoded, not delivered)
        until :meth:`release` hands them over: the node sends recovered history
        first, then these, so nothing is lost or duplicated in between.
        """
        if hold:
            self._recovering[channel, client.client_id] = []
        subs = self._channels.get(channel)
        if subs is None:
            self._channels[channel] = {client.client_id: client}
            return True
        subs[client.client_id] = client
        return False

    def release(self, channel: str, client: Subscriber,
                floor: tuple[Any, int] | None = None) -> list[Any]:
        """Stop holding pushes for a subscriber; return those held, in order.

        With ``floor`` (epoch, offset), later pushes of that epoch at or below the
        offset are not delivered to it.
        """
        if floor is not None:
            self._floors[channel, client.client_id] = floor
        return self._recovering.pop((channel, client.client_id), [])

    def unsubscribe(self, channel: str, client: Subscriber) -> bool:
        """Remove a subscriber; True if the channel has no local subscriber left."""
        if self._recovering:
            self._recovering.pop((channel, client.client_id), None)
        if self._floors:
            self._floors.pop((channel, client.client_id), None)
        subs = self._channels.get(channel)
        if subs is None or subs.pop(client.client_id, None) is None:
            return False
        if not subs:
            del self._channels[channel]
            return True
        return False

    def is_subscribed(self, channel: str, client_id: str) -> bool:
        subs = self._channels.get(channel)
        return subs is not None and client_id in subs

    def has_subscribers(self, channel: str) -> bool:
        return channel in self._channels

    def subscribers(self, channel: str) -> list[Subscriber]:
        return list(self._channels.get(channel, {}).values())

    def channels(self) -> list[str]:
        return list(self._channels)

    @property
    def subscription_count(self) -> int:
        return sum(len(subs) for subs in self._channels.values())

    def broadcast(self, channel: str, push: Any) -> int:
        """Deliver ``push`` to every local subscriber of ``channel``; return how many.

        Encodes once per codec in use (JSON text, MessagePack binary).
        """
        subs = self._channels.get(channel)
        if not subs:
            return 0
        encoded: dict[Codec, bytes] = {}
        held = self._recovering
        floors = self._floors
        total = 0
        for sub in list(subs.values()):
            if held:
                pending = held.get((channel, sub.client_id))
                if pending is not None:
                    pending.append(push)
                    continue
            if floors:
                floor = floors.get((channel, sub.client_id))
                if floor is not None:
                    offset = getattr(push, "offset", None)
                    if offset is not None:
                        if getattr(push, "epoch", None) == floor[0] and offset <= floor[1]:
                            continue
                        del floors[channel, sub.client_id]
            codec = sub.codec
            payload = encoded.get(codec)
            if payload is None:
                try:
                    payload = encoded[codec] = codec.encode(push)
                except (TypeError, ValueError, OverflowError):
                    # server code published what this codec cannot carry: our bug
                    log.exception("cannot encode a push on %s for %s", channel, codec.name)
                    encoded[codec] = b""
                    continue
            elif not payload:
                continue
            sub.deliver(payload, codec.binary, channel)
            total += len(payload)
        self.bytes_out += total
        return len(subs)

"""A subscription to one channel: an async iterator of :class:`Message` objects.

The client pushes every ``message`` frame of the channel into each of its
:class:`Subscription` objects. A subscription survives reconnections: the
client resubscribes its channels on the new connection and the same object
keeps yielding. It also remembers the last ``offset`` and ``epoch`` it saw,
which is what a recovering resubscribe (``since``) will send.

How iteration ends:

* after :meth:`Subscription.unsubscribe` or :meth:`Client.close
  <wirehub.client.Client.close>`: the loop simply stops;
* when the connection closed for good (a final close code, or a lost
  connection with ``reconnect=False``): the messages already received are
  yielded, then :class:`~wirehub.exceptions.ConnectionClosed` with
  ``final=True`` is raised, so the cause is never silent;
* when the server refused the channel on a resubscribe: the
  :class:`~wirehub.exceptions.RequestError` is raised the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from ..core.envelope import MessagePush

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Message", "Subscription", "SubscriptionSet"]


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One message received on a channel."""

    channel: str
    data: Any
    #: position of the message in the channel's stream, counted within ``epoch``
    offset: int
    #: changes when the channel's history restarts (e.g. a memory broker restarted)
    epoch: str
    #: client id of the publisher; ``None`` when published by the server side
    sender: str | None = None
    #: server time of publication in milliseconds since the Unix epoch
    ts: int = 0

    @classmethod
    def from_push(cls, push: MessagePush) -> Message:
        return cls(channel=push.channel, data=push.data, offset=push.offset,
                   epoch=push.epoch, sender=push.from_, ts=push.ts)

    def to_dict(self) -> dict[str, Any]:
        """The message with protocol field names (``from`` for the sender)."""
        return {"channel": self.channel, "data": self.data, "offset": self.offset,
                "epoch": self.epoch, "from": self.sender, "ts": self.ts}


class _End:
    """Queued after the last message; carries the exception to raise, if any."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc


class Subscription:
    """Messages of one channel, in order; ``async for message in sub: ...``.

    Messages wait in an unbounded queue until iterated. ``offset`` and
    ``epoch`` are the last position seen: from the subscribe reply, then from
    each message as it arrives (before it is iterated).
    """

    def __init__(self, client: Client, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.offset: int | None = None
        self.epoch: str | None = None
        #: after a reconnect: True if every missed message was replayed, False if the
        #: server could not (a gap: resync), None before any reconnect
        self.recovered: bool | None = None
        #: how many reconnects could not recover this channel's missed messages
        self.gaps = 0
        self._queue: asyncio.Queue[Message | _End] = asyncio.Queue()
        self._ended: _End | None = None

    def __repr__(self) -> str:
        state = "ended" if self._ended is not None else "active"
        return (f"<Subscription {self.channel!r} {state} offset={self.offset} "
                f"epoch={self.epoch!r} queued={self._queue.qsize()}>")

    @property
    def active(self) -> bool:
        """Whether messages may still arrive (not unsubscribed, client not closed)."""
        return self._ended is None

    def since(self) -> dict[str, Any] | None:
        """The last position seen, as a recovering subscribe would send it."""
        if self.offset is None or self.epoch is None:
            return None
        return {"offset": self.offset, "epoch": self.epoch}

    # -- iteration ----------------------------------------------------------------------
    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later call ends the same way
            if item.exc is not None:
                raise item.exc
            raise StopAsyncIteration
        return item

    async def get(self) -> Message:
        """The next message; raises :class:`StopAsyncIteration` once ended."""
        return await self.__anext__()

    def get_nowait(self) -> Message | None:
        """The next queued message, or ``None`` if none is waiting."""
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if isinstance(item, _End):
            self._queue.put_nowait(item)
            return None
        return item

    async def unsubscribe(self) -> None:
        """Stop receiving; the iterator ends after the messages already queued."""
        await self.client._unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.active:
            await self.unsubscribe()

    # -- fed by the client --------------------------------------------------------------
    def _positioned(self, result: Mapping[str, Any]) -> None:
        """Take the position from a subscribe reply ``{channel, epoch, offset}``.

        After a successful recovery the position stays where it was: the
        replayed messages that follow the reply move it forward one by one.
        """
        recovered = result.get("recovered")
        if isinstance(recovered, bool):
            self.recovered = recovered
            if recovered:
                return
        offset, epoch = result.get("offset"), result.get("epoch")
        if isinstance(offset, int):
            self.offset = offset
        if isinstance(epoch, str):
            self.epoch = epoch

    def _deliver(self, message: Message) -> None:
        if self._ended is None:
            self.offset, self.epoch = message.offset, message.epoch
            self._queue.put_nowait(message)

    def _end(self, exc: BaseException | None = None) -> None:
        if self._ended is None:
            self._ended = _End(exc)
            self._queue.put_nowait(self._ended)


class SubscriptionSet:
    """A client's subscriptions by channel; a channel may have several."""

    __slots__ = ("_by_channel",)

    def __init__(self) -> None:
        self._by_channel: dict[str, list[Subscription]] = {}

    def __len__(self) -> int:
        return sum(len(subs) for subs in self._by_channel.values())

    def channels(self) -> list[str]:
        return list(self._by_channel)

    def add(self, sub: Subscription) -> None:
        self._by_channel.setdefault(sub.channel, []).append(sub)

    def discard(self, sub: Subscription) -> bool:
        """Forget ``sub``; True if it was the last one of its channel."""
        subs = self._by_channel.get(sub.channel)
        if not subs or sub not in subs:
            return False
        subs.remove(sub)
        if subs:
            return False
        del self._by_channel[sub.channel]
        return True

    def deliver(self, push: MessagePush) -> None:
        subs = self._by_channel.get(push.channel)
        if subs:
            message = Message.from_push(push)
            for sub in subs:
                sub._deliver(message)

    def positioned(self, channel: str, result: Any) -> None:
        """Apply a subscribe reply to every subscription of ``channel``."""
        for sub in self._by_channel.get(channel, []):
            sub._positioned(result if isinstance(result, Mapping) else {})

    def since(self, channel: str) -> dict[str, Any] | None:
        """The last position seen on ``channel`` (its subscriptions share it)."""
        for sub in self._by_channel.get(channel, []):
            return sub.since()
        return None

    def recovery_failed(self, channel: str) -> None:
        for sub in self._by_channel.get(channel, []):
            sub.gaps += 1

    def end_channel(self, channel: str, exc: BaseException | None) -> None:
        for sub in self._by_channel.pop(channel, []):
            sub._end(exc)

    def end_all(self, make_exc: Callable[[], BaseException | None]) -> None:
        """End every subscription; ``make_exc()`` gives each its own exception."""
        channels, self._by_channel = self._by_channel, {}
        for subs in channels.values():
            for sub in subs:
                sub._end(make_exc())

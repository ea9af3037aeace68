"""Subscription queues and their ending; SubscriptionSet fan-out by channel."""

from __future__ import annotations

from typing import Any

import pytest

from wirehub.client.subscription import Message, Subscription, SubscriptionSet
from wirehub.core.envelope import MessagePush
from wirehub.exceptions import ConnectionClosed


def _push(channel: str, offset: int, data: Any = None) -> MessagePush:
    return MessagePush(channel=channel, data=data, offset=offset, epoch="e1", from_="c1", ts=9)


async def test_messages_come_out_in_order_then_iteration_ends():
    """Delivered messages are yielded in order; after _end() the loop stops."""
    sub = Subscription(None, "news")  # type: ignore[arg-type]
    subs = SubscriptionSet()
    subs.add(sub)
    for n in range(3):
        subs.deliver(_push("news", n + 1, n))
    sub._end()
    assert [m.data async for m in sub] == [0, 1, 2]
    assert (sub.offset, sub.epoch) == (3, "e1")
    assert not sub.active


async def test_end_with_exception_raises_after_the_queued_messages():
    """A final close raises ConnectionClosed, but only after what was already received."""
    sub = Subscription(None, "news")  # type: ignore[arg-type]
    sub._deliver(Message.from_push(_push("news", 1, "last")))
    sub._end(ConnectionClosed(4500, "unauthorized", final=True))
    assert (await sub.get()).data == "last"
    with pytest.raises(ConnectionClosed):
        await sub.get()
    with pytest.raises(ConnectionClosed):  # and stays ended
        await sub.get()


def test_set_fans_out_and_reports_the_last_subscription():
    """Two subscriptions of one channel both receive; discard says when none is left."""
    subs = SubscriptionSet()
    a, b = Subscription(None, "x"), Subscription(None, "x")  # type: ignore[arg-type]
    subs.add(a)
    subs.add(b)
    subs.deliver(_push("x", 1))
    subs.deliver(_push("other", 1))
    assert a.get_nowait() is not None and b.get_nowait() is not None
    assert a.get_nowait() is None
    assert subs.discard(a) is False
    assert subs.discard(b) is True
    assert subs.channels() == []


def test_positioned_and_since():
    """A subscribe reply sets the position that a recovering subscribe would send."""
    subs = SubscriptionSet()
    sub = Subscription(None, "x")  # type: ignore[arg-type]
    assert sub.since() is None
    subs.add(sub)
    subs.positioned("x", {"channel": "x", "epoch": "e7", "offset": 41})
    assert sub.since() == {"offset": 41, "epoch": "e7"}


def test_message_to_dict_uses_protocol_names():
    """to_dict() names the sender ``from``, as on the wire."""
    message = Message.from_push(_push("x", 2, {"k": 1}))
    assert message.sender == "c1"
    assert message.to_dict() == {"channel": "x", "data": {"k": 1}, "offset": 2,
                                 "epoch": "e1", "from": "c1", "ts": 9}

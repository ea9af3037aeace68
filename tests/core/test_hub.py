"""The hub: subscriptions per channel, and broadcasts encoded once per codec, not per client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from wirehub.core.codec import JSON, MSGPACK, Codec
from wirehub.core.envelope import MessagePush
from wirehub.core.hub import Hub


class CountingCodec:
    """Stands in for a Codec and counts how often it encodes."""

    def __init__(self, name: str, *, binary: bool) -> None:
        self.name = name
        self.binary = binary
        self.encoded: list[Any] = []

    def encode(self, obj: Any) -> bytes:
        self.encoded.append(obj)
        return f"{self.name}:{len(self.encoded)}".encode()


@dataclass(eq=False)
class FakeClient:
    client_id: str
    codec: Any
    got: list[tuple[bytes, bool, str | None]] = field(default_factory=list)

    def deliver(self, payload: bytes, binary: bool, channel: str | None = None) -> None:
        self.got.append((payload, binary, channel))


def push(n: int = 1, channel: str = "news") -> MessagePush:
    return MessagePush(channel=channel, data={"n": n}, offset=n, epoch="e", from_=None, ts=0)


def test_first_and_last_subscriber_are_reported() -> None:
    """subscribe says when a channel gets its first local subscriber, unsubscribe its last."""
    hub, a, b = Hub(), FakeClient("a", JSON), FakeClient("b", JSON)
    assert hub.subscribe("news", a) is True
    assert hub.subscribe("news", b) is False
    assert hub.subscribe("news", a) is False  # again: still not the first
    assert hub.subscription_count == 2
    assert hub.unsubscribe("news", a) is False
    assert hub.unsubscribe("news", a) is False  # not subscribed any more
    assert hub.has_subscribers("news")
    assert hub.unsubscribe("news", b) is True
    assert not hub.has_subscribers("news")
    assert hub.channels() == []
    assert hub.unsubscribe("never", a) is False


def test_subscription_queries() -> None:
    """is_subscribed, subscribers and channels reflect the current subscriptions."""
    hub, a, b = Hub(), FakeClient("a", JSON), FakeClient("b", MSGPACK)
    hub.subscribe("x", a)
    hub.subscribe("y", a)
    hub.subscribe("y", b)
    assert hub.is_subscribed("x", "a") and not hub.is_subscribed("x", "b")
    assert not hub.is_subscribed("z", "a")
    assert {c.client_id for c in hub.subscribers("y")} == {"a", "b"}
    assert hub.subscribers("z") == []
    assert sorted(hub.channels()) == ["x", "y"]
    assert hub.subscription_count == 3


def test_client_registry() -> None:
    """Clients are registered by id; removing one returns the channels it left empty."""
    hub, a, b = Hub(), FakeClient("a", JSON), FakeClient("b", JSON)
    hub.add_client(a)
    hub.add_client(b)
    assert hub.client_count == 2
    assert hub.client("a") is a and hub.client("zz") is None
    assert set(hub.clients()) == {a, b}
    hub.subscribe("solo", a)
    hub.subscribe("shared", a)
    hub.subscribe("shared", b)
    assert hub.remove_client(a, ["solo", "shared"]) == ["solo"]
    assert hub.client("a") is None and hub.client_count == 1
    assert not hub.is_subscribed("shared", "a") and hub.is_subscribed("shared", "b")


def test_broadcast_encodes_once_per_codec() -> None:
    """Five subscribers on two codecs cost two encodes, and each codec's clients share bytes."""
    text, binary = CountingCodec("t", binary=False), CountingCodec("b", binary=True)
    hub = Hub()
    clients = [FakeClient(f"t{i}", text) for i in range(3)] + [
        FakeClient(f"b{i}", binary) for i in range(2)]
    for c in clients:
        hub.subscribe("news", c)
    message = push()
    assert hub.broadcast("news", message) == 5
    assert text.encoded == [message] and binary.encoded == [message]
    for c in clients:
        assert len(c.got) == 1
        _payload, is_binary, channel = c.got[0]
        assert is_binary is c.codec.binary
        assert channel == "news"
    text_payloads = {id(c.got[0][0]) for c in clients if c.codec is text}
    binary_payloads = {id(c.got[0][0]) for c in clients if c.codec is binary}
    assert len(text_payloads) == 1 and len(binary_payloads) == 1  # the very same object


def test_broadcast_with_real_codecs_shares_payload_objects() -> None:
    """With the real JSON and MessagePack codecs each subscriber of a codec gets the same bytes."""
    hub = Hub()
    jsons = [FakeClient(f"j{i}", JSON) for i in range(4)]
    packs = [FakeClient(f"m{i}", MSGPACK) for i in range(4)]
    for c in jsons + packs:
        hub.subscribe("c", c)
    hub.broadcast("c", push(channel="c"))
    assert len({id(c.got[0][0]) for c in jsons}) == 1
    assert len({id(c.got[0][0]) for c in packs}) == 1
    assert JSON.decode_value(jsons[0].got[0][0]) == MSGPACK.decode_value(packs[0].got[0][0])
    assert all(c.got[0][1] is False for c in jsons) and all(c.got[0][1] for c in packs)


def test_broadcast_to_empty_channel_encodes_nothing() -> None:
    """A channel without local subscribers costs no encode and reaches nobody."""
    codec = CountingCodec("t", binary=False)
    hub, other = Hub(), FakeClient("o", codec)
    hub.subscribe("elsewhere", other)
    assert hub.broadcast("news", push()) == 0
    assert codec.encoded == [] and other.got == []


def test_broadcast_reaches_only_that_channel() -> None:
    """Subscribers of other channels get nothing."""
    hub, a, b = Hub(), FakeClient("a", JSON), FakeClient("b", JSON)
    hub.subscribe("one", a)
    hub.subscribe("two", b)
    hub.broadcast("one", push(channel="one"))
    assert len(a.got) == 1 and b.got == []


@pytest.mark.parametrize("n", [1, 3])
def test_held_subscriber_gets_pushes_on_release_in_order(n: int) -> None:
    """While held, a subscriber's pushes are kept (not encoded); release returns them in order."""
    codec = CountingCodec("t", binary=False)
    hub, held, live = Hub(), FakeClient("h", codec), FakeClient("l", JSON)
    hub.subscribe("news", live)
    hub.subscribe("news", held, hold=True)
    messages = [push(i) for i in range(1, n + 1)]
    for m in messages:
        hub.broadcast("news", m)
    assert held.got == [] and codec.encoded == []
    assert len(live.got) == n
    assert hub.release("news", held) == messages
    assert hub.release("news", held) == []
    hub.broadcast("news", push(9))
    assert len(held.got) == 1


def test_unsubscribe_while_held_forgets_held_pushes() -> None:
    """Unsubscribing a held subscriber drops what was held for it."""
    hub, held = Hub(), FakeClient("h", JSON)
    hub.subscribe("news", held, hold=True)
    hub.broadcast("news", push())
    assert hub.unsubscribe("news", held) is True
    assert hub.release("news", held) == []


def test_codec_is_hashable_key() -> None:
    """Real codecs can key the per-broadcast encode cache."""
    assert len({JSON: 1, MSGPACK: 2}) == 2
    assert isinstance(JSON, Codec)

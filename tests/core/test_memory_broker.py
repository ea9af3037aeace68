"""The memory broker: offsets per channel, one epoch per instance, bounded history."""

from __future__ import annotations

import time
from typing import Any

import pytest

from wirehub.brokers import MemoryBroker, create_broker
from wirehub.brokers.base import Publication
from wirehub.exceptions import ConfigError


class Recorder:
    """A BrokerHandler that records what the broker delivers."""

    def __init__(self) -> None:
        self.publications: list[Publication] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def on_publication(self, pub: Publication) -> None:
        self.publications.append(pub)

    def on_event(self, channel: str, event: dict[str, Any]) -> None:
        self.events.append((channel, event))


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


async def test_offsets_start_at_one_and_grow_by_one_per_channel(broker: MemoryBroker) -> None:
    """Each channel numbers its messages 1, 2, 3... independently of other channels."""
    assert (await broker.position("a")).offset == 0
    offsets_a = [(await broker.publish("a", i)).offset for i in range(5)]
    offsets_b = [(await broker.publish("b", i)).offset for i in range(3)]
    assert offsets_a == [1, 2, 3, 4, 5]
    assert offsets_b == [1, 2, 3]
    assert (await broker.position("a")).offset == 5
    assert (await broker.position("b")).offset == 3


async def test_publication_fields(broker: MemoryBroker) -> None:
    """A publication carries channel, data, offset, epoch, the client and a millisecond ts."""
    before = int(time.time() * 1000)
    pub = await broker.publish("news", {"x": 1}, client="c1")
    after = int(time.time() * 1000)
    assert (pub.channel, pub.data, pub.offset, pub.client) == ("news", {"x": 1}, 1, "c1")
    assert pub.epoch == broker.epoch
    assert before <= pub.ts <= after
    assert (await broker.publish("news", None)).client is None


async def test_epoch_is_shared_by_channels_and_new_per_instance(broker: MemoryBroker) -> None:
    """One broker has one epoch for all channels; another instance gets another one."""
    a, b = await broker.publish("a", 1), await broker.publish("b", 1)
    assert a.epoch == b.epoch == (await broker.position("never")).epoch == broker.epoch
    assert len(broker.epoch) == 8 and int(broker.epoch, 16) >= 0
    assert MemoryBroker().epoch != broker.epoch


async def test_delivers_only_subscribed_channels_in_offset_order(broker: MemoryBroker) -> None:
    """The handler gets subscribed channels' publications in order, none after unsubscribe."""
    rec = Recorder()
    broker.set_handler(rec)
    await broker.publish("news", "before")
    await broker.subscribe("news")
    for i in range(3):
        await broker.publish("news", i)
        await broker.publish("other", i)
    await broker.unsubscribe("news")
    await broker.publish("news", "after")
    assert [(p.channel, p.offset, p.data) for p in rec.publications] == [
        ("news", 2, 0), ("news", 3, 1), ("news", 4, 2)]


async def test_events_reach_subscribed_channels_only(broker: MemoryBroker) -> None:
    """Ephemeral events go to the handler for subscribed channels and are not kept."""
    rec = Recorder()
    broker.set_handler(rec)
    await broker.subscribe("room")
    await broker.publish_event("room", {"op": "event", "n": 1})
    await broker.publish_event("hall", {"op": "event", "n": 2})
    assert rec.events == [("room", {"op": "event", "n": 1})]
    assert (await broker.position("room")).offset == 0
    assert (await broker.history("room")).publications == []


async def test_history_is_bounded_by_count(broker: MemoryBroker) -> None:
    """Only the newest history_size messages are kept; offsets keep counting."""
    for i in range(10):
        await broker.publish("c", i, history_size=3)
    hist = await broker.history("c")
    assert [p.offset for p in hist.publications] == [8, 9, 10]
    assert [p.data for p in hist.publications] == [7, 8, 9]
    assert (hist.offset, hist.epoch, hist.complete) == (10, broker.epoch, True)


async def test_history_size_zero_keeps_nothing(broker: MemoryBroker) -> None:
    """history_size=0 keeps no history (and drops what was kept) but still numbers messages."""
    await broker.publish("c", "kept")
    pub = await broker.publish("c", "not kept", history_size=0)
    assert pub.offset == 2
    hist = await broker.history("c")
    assert hist.publications == [] and hist.offset == 2


async def test_history_is_bounded_by_age(broker: MemoryBroker,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages older than history_ttl leave the history."""
    now = [1_000_000.0]
    monkeypatch.setattr("wirehub.brokers.memory.time.time", lambda: now[0])
    await broker.publish("c", "old", history_ttl=10)
    now[0] += 6
    await broker.publish("c", "mid", history_ttl=10)
    now[0] += 6  # "old" is 12 s old now, "mid" 6 s
    assert [p.data for p in (await broker.history("c")).publications] == ["mid"]
    now[0] += 60
    hist = await broker.history("c")
    assert hist.publications == [] and hist.offset == 2


async def test_history_limit_returns_newest(broker: MemoryBroker) -> None:
    """Without since, limit picks the newest messages, oldest first."""
    for i in range(5):
        await broker.publish("c", i)
    assert [p.offset for p in (await broker.history("c", limit=2)).publications] == [4, 5]
    assert (await broker.history("c", limit=0)).publications == []


async def test_history_since_recovers_what_followed(broker: MemoryBroker) -> None:
    """since=N returns the messages after offset N, complete while nothing is missing."""
    for i in range(5):
        await broker.publish("c", i, history_size=3)
    hist = await broker.history("c", since=3)
    assert [p.offset for p in hist.publications] == [4, 5] and hist.complete
    assert (await broker.history("c", since=2)).complete  # 3 is the oldest kept: no gap
    assert [p.offset for p in (await broker.history("c", since=2, limit=1)).publications] == [3]
    assert (await broker.history("c", since=5)).publications == []
    gone = await broker.history("c", since=1)  # offset 2 was trimmed: a gap
    assert not gone.complete and gone.publications == []
    future = await broker.history("c", since=9)  # a position the stream never reached
    assert not future.complete


async def test_history_of_unknown_channel(broker: MemoryBroker) -> None:
    """An unknown channel has an empty, complete history at offset 0 (unless since > 0)."""
    hist = await broker.history("nothing")
    assert (hist.publications, hist.offset, hist.epoch, hist.complete) == (
        [], 0, broker.epoch, True)
    assert not (await broker.history("nothing", since=4)).complete


async def test_presence_entries(broker: MemoryBroker) -> None:
    """Presence adds, lists and removes clients per channel."""
    await broker.add_presence("room", "c1", {"client": "c1"})
    await broker.add_presence("room", "c2", {"client": "c2"})
    assert set(await broker.presence("room")) == {"c1", "c2"}
    await broker.remove_presence("room", "c1")
    await broker.remove_presence("room", "c1")
    await broker.remove_presence("hall", "c1")
    assert await broker.presence("room") == {"c2": {"client": "c2"}}
    await broker.remove_presence("room", "c2")
    assert await broker.presence("room") == {}


def test_create_broker_urls() -> None:
    """memory:// (or nothing) makes a memory broker; an unknown URL is a ConfigError naming it."""
    for url in (None, "", "memory", "memory://"):
        assert isinstance(create_broker(url), MemoryBroker)
    with pytest.raises(ConfigError) as info:
        create_broker("nosuch://x")
    assert info.value.key == "broker" and "nosuch://x" in str(info.value)

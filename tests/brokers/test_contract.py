"""The broker contract: every backend (memory, Redis) passes the same tests.

Delivery may be asynchronous (Redis), so a test that shows something was *not*
delivered publishes a marker on a subscribed channel afterwards and waits for
it: the broker delivers in order, so anything that was going to arrive before
the marker has arrived by then.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.brokers.conftest import Recorder
from wirehub.brokers.base import Broker
from wirehub.brokers.redis import RedisBroker

NESTED = {"text": "héllo ✓", "n": -3, "x": 2.5, "ok": True, "none": None,
          "list": [1, "two", [3, {"four": 4}]], "obj": {"a": {"b": {"c": []}}}}


async def _marker(broker: Broker, rec: Recorder, unit: float) -> None:
    """Publish on "marker" (subscribed) and wait until it is delivered."""
    before = len(rec.publications)
    await broker.publish("marker", "marker")
    await rec.wait(unit, publications=before + 1)


async def test_offsets_start_at_one_and_grow_by_one_per_channel(broker: Broker) -> None:
    """Each channel numbers its messages 1, 2, 3... independently of other channels."""
    assert (await broker.position("a")).offset == 0
    offsets_a = [(await broker.publish("a", i)).offset for i in range(5)]
    offsets_b = [(await broker.publish("b", i)).offset for i in range(3)]
    assert offsets_a == [1, 2, 3, 4, 5]
    assert offsets_b == [1, 2, 3]
    assert (await broker.position("a")).offset == 5
    assert (await broker.position("b")).offset == 3


async def test_one_epoch_per_channel_stream(broker: Broker) -> None:
    """Every publication of a channel carries the epoch that position() and history() report."""
    pubs = [await broker.publish("c", i) for i in range(4)]
    epochs = {p.epoch for p in pubs}
    assert len(epochs) == 1
    [epoch] = epochs
    assert epoch and isinstance(epoch, str)
    assert (await broker.position("c")).epoch == epoch
    assert (await broker.history("c")).epoch == epoch


async def test_position_of_unknown_channel_keeps_its_epoch(broker: Broker) -> None:
    """An unknown channel is at offset 0, and its first publication keeps the epoch reported."""
    pos = await broker.position("fresh")
    assert pos.offset == 0 and pos.epoch
    assert await broker.position("fresh") == pos
    hist = await broker.history("fresh")
    assert (hist.publications, hist.offset, hist.epoch, hist.complete) == ([], 0, pos.epoch, True)
    assert not (await broker.history("fresh", since=4)).complete  # never reached offset 4
    first = await broker.publish("fresh", "one")
    assert (first.offset, first.epoch) == (1, pos.epoch)  # a client at {0, epoch} recovers it
    recovered = await broker.history("fresh", since=0)
    assert recovered.complete and recovered.epoch == pos.epoch
    assert [p.data for p in recovered.publications] == ["one"]


async def test_publication_fields_round_trip(broker: Broker, rec: Recorder, unit: float) -> None:
    """Channel, nested JSON data, client, offset, epoch, ms ts survive storage and delivery."""
    await broker.subscribe("news")
    before = int(time.time() * 1000)
    pub = await broker.publish("news", NESTED, client="c1")
    anonymous = await broker.publish("news", [None, 0, ""])
    after = int(time.time() * 1000)
    assert (pub.channel, pub.data, pub.offset, pub.client) == ("news", NESTED, 1, "c1")
    assert before <= pub.ts <= anonymous.ts <= after
    assert anonymous.client is None and anonymous.data == [None, 0, ""]
    await rec.wait(unit, publications=2)
    assert rec.publications == [pub, anonymous]
    assert (await broker.history("news")).publications == [pub, anonymous]


async def test_publish_takes_a_size_hint(broker: Broker) -> None:
    """publish(size=...) (the client's frame size, for memory budgets) changes nothing else."""
    pub = await broker.publish("c", {"k": "v" * 100}, client="c1", size=120)
    assert (pub.offset, pub.data) == (1, {"k": "v" * 100})
    assert (await broker.history("c")).publications == [pub]


async def test_history_without_since(broker: Broker) -> None:
    """Without since: every kept message oldest first, or the newest ``limit`` of them."""
    pubs = [await broker.publish("c", i) for i in range(5)]
    hist = await broker.history("c")
    assert hist.publications == pubs
    assert (hist.offset, hist.epoch, hist.complete) == (5, pubs[0].epoch, True)
    assert [p.offset for p in (await broker.history("c", limit=2)).publications] == [4, 5]
    assert (await broker.history("c", limit=0)).publications == []
    assert len((await broker.history("c", limit=99)).publications) == 5


async def test_history_since_and_complete(broker: Broker) -> None:
    """since=N: what followed N (oldest first, up to limit); complete=False if some is gone."""
    for i in range(5):
        await broker.publish("c", i, history_size=3)  # keeps offsets 3, 4, 5
    hist = await broker.history("c", since=3)
    assert [p.offset for p in hist.publications] == [4, 5] and hist.complete
    assert hist.offset == 5
    assert (await broker.history("c", since=2)).complete  # 3 is the oldest kept: no gap
    assert [p.offset for p in (await broker.history("c", since=2, limit=1)).publications] == [3]
    top = await broker.history("c", since=5)
    assert top.publications == [] and top.complete
    gone = await broker.history("c", since=1)  # offset 2 was trimmed: a gap
    assert not gone.complete and gone.publications == []
    future = await broker.history("c", since=9)  # a position the stream never reached
    assert not future.complete and future.publications == []


async def test_history_is_bounded_by_size(broker: Broker) -> None:
    """Only the newest history_size messages are kept; offsets keep counting."""
    for i in range(10):
        await broker.publish("c", i, history_size=3)
    hist = await broker.history("c")
    assert [p.offset for p in hist.publications] == [8, 9, 10]
    assert [p.data for p in hist.publications] == [7, 8, 9]
    assert hist.offset == 10


async def test_history_size_zero_keeps_nothing(broker: Broker) -> None:
    """history_size=0 keeps nothing (and drops what was kept) but still numbers messages."""
    await broker.publish("c", "kept")
    pub = await broker.publish("c", "not kept", history_size=0)
    assert pub.offset == 2
    hist = await broker.history("c")
    assert hist.publications == [] and hist.offset == 2
    assert not (await broker.history("c", since=1)).complete


async def test_history_is_bounded_by_age(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages older than history_ttl leave the history (clock under the test's control)."""
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    await broker.publish("c", "old", history_ttl=10)
    now[0] += 6
    await broker.publish("c", "mid", history_ttl=10)
    now[0] += 6  # "old" is 12 s old now, "mid" 6 s
    assert [p.data for p in (await broker.history("c")).publications] == ["mid"]
    assert not (await broker.history("c", since=0)).complete  # "old" aged out: a gap
    assert [p.data for p in (await broker.history("c", since=1)).publications] == ["mid"]
    now[0] += 60
    hist = await broker.history("c")
    assert hist.publications == [] and hist.offset == 2


async def test_delivers_only_subscribed_channels_in_offset_order(
        broker: Broker, rec: Recorder, unit: float) -> None:
    """The handler gets a subscribed channel's publications in offset order, others never."""
    await broker.publish("news", "before")
    await broker.subscribe("news")
    await broker.subscribe("marker")
    for i in range(50):
        await broker.publish("news", i)
        await broker.publish("other", i)
    await _marker(broker, rec, unit)
    assert [(p.channel, p.offset, p.data) for p in rec.on("news")] == [
        ("news", i + 2, i) for i in range(50)]
    assert rec.on("other") == []


async def test_events_are_delivered_but_not_stored(broker: Broker, rec: Recorder,
                                                  unit: float) -> None:
    """Ephemeral events reach the handler for subscribed channels only and are not kept."""
    await broker.subscribe("room")
    await broker.publish_event("hall", {"op": "event", "n": 0})
    await broker.publish_event("room", {"op": "event", "n": 1, "nested": NESTED})
    await rec.wait(unit, events=1)
    await broker.subscribe("marker")
    await _marker(broker, rec, unit)
    assert rec.events == [("room", {"op": "event", "n": 1, "nested": NESTED})]
    assert (await broker.position("room")).offset == 0
    assert (await broker.history("room")).publications == []


async def test_unsubscribe_stops_delivery(broker: Broker, rec: Recorder, unit: float) -> None:
    """After unsubscribe nothing of the channel is delivered; subscribing again resumes."""
    await broker.subscribe("news")
    await broker.subscribe("marker")
    await broker.publish("news", "one")
    await rec.wait(unit, publications=1)
    await broker.unsubscribe("news")
    await broker.publish("news", "two")
    await broker.publish_event("news", {"op": "event"})
    await _marker(broker, rec, unit)
    assert [p.data for p in rec.on("news")] == ["one"] and rec.events == []
    await broker.subscribe("news")
    await broker.publish("news", "three")
    await rec.wait(unit, publications=3)
    assert [(p.data, p.offset) for p in rec.on("news")] == [("one", 1), ("three", 3)]


async def test_presence_add_remove_list(broker: Broker) -> None:
    """Presence adds, lists (with the entries as given) and removes clients per channel."""
    ada = {"client": "c1", "user": "ada", "info": {"nick": "ada", "tags": ["x"]}}
    bob = {"client": "c2", "user": None, "info": None}
    await broker.add_presence("room", "c1", ada)
    await broker.add_presence("room", "c2", bob)
    await broker.add_presence("hall", "c1", ada)
    assert await broker.presence("room") == {"c1": ada, "c2": bob}
    await broker.remove_presence("room", "c1")
    await broker.remove_presence("room", "c1")  # twice is fine
    await broker.remove_presence("nowhere", "c1")
    assert await broker.presence("room") == {"c2": bob}
    assert await broker.presence("hall") == {"c1": ada}
    await broker.remove_presence("room", "c2")
    assert await broker.presence("room") == {}
    assert await broker.presence("never") == {}


async def test_lease(broker: Broker, unit: float) -> None:
    """A lease is held and renewed by one holder until it expires (memory: always granted)."""
    assert await broker.lease("feed", "a", unit)
    assert await broker.lease("feed", "a", unit)  # renewing
    if not isinstance(broker, RedisBroker):
        assert await broker.lease("feed", "b", unit)
        return
    assert not await broker.lease("feed", "b", unit)
    assert await broker.lease("other", "b", unit)  # leases are independent
    assert await broker.lease("feed", "a", 0.05)  # shortened by its holder; then it lapses
    async with asyncio.timeout(unit):  # expiry is Redis's clock: poll for it
        while not await broker.lease("feed", "b", unit):
            await asyncio.sleep(0.02)
    assert not await broker.lease("feed", "a", unit)


async def test_release_hands_the_lease_over_at_once(broker: Broker, unit: float) -> None:
    """A holder that stops releases its lease: the next holder gets it without waiting."""
    assert await broker.lease("feed", "a", 60 * unit)
    await broker.release("feed", "b")  # not b's: nothing happens
    if isinstance(broker, RedisBroker):
        assert not await broker.lease("feed", "b", unit)
    await broker.release("feed", "a")
    assert await broker.lease("feed", "b", unit)
    await broker.release("feed", "a")  # a no longer holds it: b keeps it
    if isinstance(broker, RedisBroker):
        assert not await broker.lease("feed", "a", unit)

"""Continuity keeps one channel's deliveries on a node in order, without gaps or duplicates,
or sends the subscribers to recover: tested against a fake broker."""

from __future__ import annotations

import asyncio

import pytest

from wirehub.brokers.base import History, Publication
from wirehub.continuity import Continuity
from wirehub.exceptions import BrokerError


def pub(offset: int, channel: str = "c", epoch: str = "e1") -> Publication:
    return Publication(channel, f"m{offset}", offset, epoch, None, 0)


class FakeBroker:
    """Only history(): a channel's retained publications, optionally held at a gate."""

    def __init__(self) -> None:
        self.epoch = "e1"
        self.kept: dict[str, list[Publication]] = {}
        self.top: dict[str, int] = {}
        self.calls: list[tuple[str, int | None]] = []
        self.gate: asyncio.Event | None = None  # history() waits for it when set
        self.called = asyncio.Event()  # set when history() is called
        self.returned = asyncio.Event()  # set just before history() returns
        self.fail = False

    def retain(self, channel: str, first: int, top: int, epoch: str = "e1") -> None:
        self.kept[channel] = [pub(n, channel, epoch) for n in range(first, top + 1)]
        self.top[channel] = top
        self.epoch = epoch

    async def history(self, channel: str, *, since: int | None = None,
                      limit: int | None = None) -> History:
        self.calls.append((channel, since))
        self.called.set()
        kept, top = self.kept.get(channel, []), self.top.get(channel, 0)
        first = kept[0].offset if kept else top + 1
        since = since or 0
        complete = first <= since + 1 and since <= top
        pubs = [p for p in kept if p.offset > since] if complete else []
        result = History(pubs, top, self.epoch, complete=complete)  # as read when called
        if self.gate is not None:
            await self.gate.wait()
        self.returned.set()
        if self.fail:
            raise BrokerError("read history", "redis is unreachable")
        return result


class Sink:
    """What the node would do: deliver to the hub, or resync the channel's subscribers."""

    def __init__(self) -> None:
        self.delivered: list[Publication] = []
        self.resynced: list[str] = []
        self.changed = asyncio.Event()

    def deliver(self, p: Publication) -> None:
        self.delivered.append(p)
        self.changed.set()

    def resync(self, channel: str) -> None:
        self.resynced.append(channel)
        self.changed.set()

    def offsets(self, channel: str = "c") -> list[int]:
        return [p.offset for p in self.delivered if p.channel == channel]

    async def until(self, unit: float, *, delivered: int = 0, resynced: int = 0) -> None:
        async with asyncio.timeout(unit):
            while len(self.delivered) < delivered or len(self.resynced) < resynced:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def continuity(broker: FakeBroker, sink: Sink):  # type: ignore[no-untyped-def]
    c = Continuity(broker, sink.deliver, sink.resync)  # type: ignore[arg-type]
    yield c
    c.close()


async def _repair_done(broker: FakeBroker) -> None:
    """history() returned; the repair finishes in the same step, before this resumes."""
    await broker.returned.wait()
    broker.returned.clear()


def test_in_order_publications_are_delivered(continuity, sink, broker) -> None:
    """Offsets last+1, last+2, ... go straight through, per channel, without reading history."""
    for n in (1, 2, 3):
        continuity.accept(pub(n))
        continuity.accept(pub(n + 10, channel="d"))  # the first one seen sets the position
    assert sink.offsets("c") == [1, 2, 3]
    assert sink.offsets("d") == [11, 12, 13]
    assert broker.calls == [] and continuity.repaired == continuity.resyncs == 0


def test_duplicates_are_dropped(continuity, sink) -> None:
    """An offset at or below the last delivered one is a duplicate and is dropped."""
    for n in (1, 2, 2, 1, 3, 3):
        continuity.accept(pub(n))
    assert sink.offsets() == [1, 2, 3]


async def test_gap_is_repaired_from_history_then_held_messages(continuity, sink, broker,
                                                              unit) -> None:
    """A gap is filled from history in order; what arrived during the repair follows, once."""
    continuity.accept(pub(1))
    broker.retain("c", first=1, top=5)
    broker.gate = asyncio.Event()
    continuity.accept(pub(5))  # 2..4 missing: repair
    continuity.accept(pub(6))  # held while history is read
    continuity.accept(pub(4))  # a late duplicate of what history returns
    continuity.accept(pub(7))
    assert sink.offsets() == [1]
    broker.gate.set()
    await sink.until(unit, delivered=7)
    assert sink.offsets() == [1, 2, 3, 4, 5, 6, 7] and broker.calls == [("c", 1)]
    assert continuity.repaired == 4 and continuity.resyncs == 0  # 2..5 came from history
    continuity.accept(pub(8))
    continuity.accept(pub(7))
    assert sink.offsets()[-1] == 8 and len(sink.delivered) == 8


async def test_gap_no_longer_in_history_resyncs(continuity, sink, broker, unit) -> None:
    """When history no longer reaches back to the gap, the channel's subscribers must resync."""
    continuity.accept(pub(1))
    broker.retain("c", first=4, top=6)  # 2 and 3 were trimmed
    continuity.accept(pub(6))
    await sink.until(unit, resynced=1)
    assert sink.resynced == ["c"] and sink.offsets() == [1]
    assert continuity.resyncs == 1 and continuity.repaired == 0
    continuity.accept(pub(7))  # delivery goes on for the subscribers that recovered
    assert sink.offsets() == [1, 7]


async def test_history_failure_resyncs(continuity, sink, broker, unit) -> None:
    """If history cannot be read (broker down), the subscribers are sent to recover."""
    continuity.accept(pub(1))
    broker.fail = True
    continuity.accept(pub(3))
    await sink.until(unit, resynced=1)
    assert sink.resynced == ["c"] and sink.offsets() == [1]


def test_epoch_change_resyncs(continuity, sink) -> None:
    """A publication from a new epoch means history was lost: resync, deliver nothing stale."""
    continuity.accept(pub(7))
    continuity.accept(pub(1, epoch="e2"))
    assert sink.resynced == ["c"] and sink.offsets() == [7]
    continuity.accept(pub(2, epoch="e2"))  # the new stream goes on from there
    assert sink.offsets() == [7, 2]


async def test_epoch_changed_in_history_resyncs(continuity, sink, broker, unit) -> None:
    """A repair that finds the channel under a new epoch resyncs instead of mixing streams."""
    continuity.accept(pub(1))
    broker.retain("c", first=1, top=3, epoch="e2")
    continuity.accept(pub(3))
    await sink.until(unit, resynced=1)
    assert sink.offsets() == [1] and continuity.repaired == 0


async def test_broker_reconnect_repairs_known_channels(continuity, sink, broker, unit) -> None:
    """After a pub/sub outage a channel seen before is repaired from history, without a resync."""
    continuity.accept(pub(1))
    broker.retain("c", first=1, top=3)
    continuity.broker_reconnected({"c"})
    await sink.until(unit, delivered=3)
    assert sink.offsets() == [1, 2, 3] and sink.resynced == []
    assert continuity.repaired == 2


async def test_broker_reconnect_with_nothing_missed(continuity, sink, broker, unit) -> None:
    """A reconnect during which nothing was published delivers nothing and resyncs nothing."""
    continuity.accept(pub(1))
    broker.retain("c", first=1, top=1)
    continuity.broker_reconnected({"c"})
    await _repair_done(broker)
    continuity.accept(pub(2))
    assert sink.offsets() == [1, 2] and sink.resynced == []


def test_broker_reconnect_on_a_channel_never_delivered_resyncs(continuity, sink) -> None:
    """A reconnected channel with no offset to repair from resyncs (else a gap were silent)."""
    continuity.broker_reconnected({"quiet"})
    assert sink.resynced == ["quiet"] and continuity.resyncs == 1


async def test_reconnect_during_a_repair_repairs_again(continuity, sink, broker, unit) -> None:
    """A reconnect while history is read triggers another repair afterwards."""
    continuity.accept(pub(1))
    broker.retain("c", first=1, top=3)
    broker.gate = asyncio.Event()
    continuity.accept(pub(3))
    await broker.called.wait()  # the repair has read history (up to offset 3)
    broker.retain("c", first=1, top=5)  # 4, 5 published while pub/sub was down...
    continuity.broker_reconnected({"c"})  # ...which it now says
    broker.gate.set()
    await sink.until(unit, delivered=5)
    assert sink.offsets() == [1, 2, 3, 4, 5]
    assert broker.calls == [("c", 1), ("c", 3)] and sink.resynced == []


async def test_held_beyond_history_repairs_again(continuity, sink, broker, unit) -> None:
    """Held messages ahead of what history returned start another repair for the rest."""
    continuity.accept(pub(1))
    broker.retain("c", first=1, top=3)
    broker.gate = asyncio.Event()
    continuity.accept(pub(3))
    continuity.accept(pub(6))  # 4 and 5 lost too
    broker.gate.set()
    await _repair_done(broker)
    assert sink.offsets() == [1, 2, 3]
    broker.retain("c", first=1, top=6)
    await sink.until(unit, delivered=6)
    assert sink.offsets() == [1, 2, 3, 4, 5, 6] and broker.calls == [("c", 1), ("c", 3)]


async def test_forget_abandons_a_repair(continuity, sink, broker, unit) -> None:
    """A channel forgotten during its repair gets nothing from it; a new one starts afresh."""
    continuity.accept(pub(1))
    broker.retain("c", first=1, top=4)
    broker.gate = asyncio.Event()
    continuity.accept(pub(4))
    continuity.forget("c")
    continuity.accept(pub(9))  # subscribed again: not held behind the abandoned repair
    broker.gate.set()
    await _repair_done(broker)
    assert sink.offsets() == [1, 9] and sink.resynced == []
    continuity.accept(pub(10))
    assert sink.offsets() == [1, 9, 10]

"""A node dies or drains while messages flow: its clients come back through nginx on
another node and recover every message they missed, exactly once and in order."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import pytest
import websockets

import wirehub
from tests.cluster.conftest import Cluster
from tests.cluster.streams import Progress, Publisher, Subscriber
from wirehub import CloseCode

CHANNEL = "feed.cluster"


async def start_stream(cluster: Cluster, stack: contextlib.AsyncExitStack, progress: Progress,
                       subscribers: int, unit: float) -> tuple[Publisher, list[Subscriber]]:
    """A publisher and ``subscribers`` subscribers, all connected through nginx."""
    client = await stack.enter_async_context(wirehub.connect(
        cluster.ws_url, request_timeout=unit, open_timeout=unit))
    subs = [await Subscriber(progress).start(stack, cluster.ws_url, CHANNEL, unit)
            for _ in range(subscribers)]
    publisher = Publisher(client, CHANNEL, progress)
    stack.push_async_callback(publisher.stop)
    return publisher, subs


def pick_victim(cluster: Cluster, publisher: Publisher, subs: list[Subscriber]) -> str:
    """A node with subscribers, not the publisher's."""
    names = [n for n in cluster.names if n != publisher.client.node]
    victim = names[0]
    assert sum(s.node == victim for s in subs) >= 3, [s.node for s in subs]
    return victim


def assert_exact(subs: list[Subscriber], sent: list[tuple[int, int]]) -> None:
    """Every subscriber saw exactly what was published: no gap, no duplicate, same order."""
    assert [n for n, _ in sent] == list(range(1, len(sent) + 1))
    assert [off for _, off in sent] == list(range(1, len(sent) + 1))
    problems = [s.problems(sent) for s in subs]
    assert not any(problems), "\n".join(p for p in problems if p)
    assert [s.sub.gaps for s in subs] == [0] * len(subs)


async def test_kill_9_a_node_its_clients_recover_every_message_elsewhere(
        make_cluster, unit: float) -> None:
    """A node hangs, then kill -9: its clients move to other nodes and get every message once."""
    cluster = make_cluster(3)
    progress = Progress()
    async with contextlib.AsyncExitStack() as stack:
        publisher, subs = await start_stream(cluster, stack, progress, 9, unit)
        victim = pick_victim(cluster, publisher, subs)
        victims = [s for s in subs if s.node == victim]
        await progress.until(lambda: all(len(s.got) >= 20 for s in subs), unit)

        # Freeze the node first: messages published now reach its clients only if
        # they recover them. Then kill it for good.
        node = cluster.node(victim)
        node.proc.send_signal(signal.SIGSTOP)
        frozen_at = len(publisher.sent)
        await progress.until(lambda: len(publisher.sent) >= frozen_at + 20, unit)
        node.proc.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(node.proc.wait, unit) == -signal.SIGKILL
        killed_at = len(publisher.sent)

        await progress.until(lambda: all(s.client.reconnects >= 1 and s.settled
                                         for s in victims), unit * 2)
        sent = await publisher.finish(20, unit)
        await progress.until(lambda: all(len(s.got) >= len(sent) for s in subs), unit)

    assert_exact(subs, sent)
    for s in victims:
        assert s.nodes[0] == victim and s.nodes[-1] != victim, s.nodes
        assert s.closes[0][1] is None  # the TCP connection dropped, no close frame
        assert s.sub.recovered is True
        # it had not seen what was published while its node hung: recovery replayed it
        assert s.offset_at_drop[0] is not None and s.offset_at_drop[0] < killed_at
    for s in subs:
        if s not in victims:
            assert s.client.reconnects == 0 and s.nodes == [s.node]


async def test_sigterm_drains_a_node_clients_move_and_recover_without_gaps(
        make_cluster, unit: float) -> None:
    """SIGTERM: no new connections, spread 1001 closes, clients move and miss nothing, exit 0."""
    cluster = make_cluster(3, "--drain-period", "1")
    progress = Progress()
    async with contextlib.AsyncExitStack() as stack:
        publisher, subs = await start_stream(cluster, stack, progress, 18, unit)
        victim = pick_victim(cluster, publisher, subs)
        victims = [s for s in subs if s.node == victim]
        await progress.until(lambda: all(len(s.got) >= 20 for s in subs), unit)

        node = cluster.node(victim)
        node.proc.send_signal(signal.SIGTERM)
        await progress.until(lambda: any(s.closes for s in victims), unit)
        # draining: the node's port takes no new connection any more
        with pytest.raises((OSError, websockets.InvalidStatus)):
            await websockets.connect(node.ws_url + "/ws", open_timeout=unit)
        await progress.until(lambda: all(s.client.reconnects >= 1 and s.settled
                                         for s in victims), unit * 2)
        assert await asyncio.to_thread(node.proc.wait, unit) == 0, "".join(node.lines)
        sent = await publisher.finish(20, unit)
        await progress.until(lambda: all(len(s.got) >= len(sent) for s in subs), unit)
        closes = {id(s): list(s.closes) for s in subs}  # before the clients close themselves

    assert_exact(subs, sent)
    drained = [closes[id(s)] for s in victims]
    assert [[code for _, code in c] for c in drained] == [[CloseCode.GOING_AWAY]] * len(victims)
    times = sorted(c[0][0] for c in drained)
    # spread at random over the drain period, not all at once (6 closes within 20 ms of
    # each other over 1 s: probability ~1e-8)
    assert times[-1] - times[0] > 0.02, times
    for s in victims:
        assert s.nodes[-1] != victim and s.sub.recovered is True, s.nodes
    for s in subs:
        if s not in victims:
            assert s.client.reconnects == 0 and closes[id(s)] == []

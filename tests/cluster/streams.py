"""Numbered messages through a cluster: a paced publisher, subscribers that record
what they saw (and how their connections closed), and a way to await progress."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection

import wirehub
from wirehub import ConnectionState

#: seconds between two publishes: about 100 messages/s, well under the
#: per-connection rate limit (200/s)
PACE = 0.01


class Progress:
    """Something changed; ``until(pred)`` re-checks ``pred`` after every change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def changed(self, *_: Any) -> None:
        self._event.set()

    async def until(self, pred: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not pred():
                self._event.clear()
                await self._event.wait()


def close_recorder(closes: list[tuple[float, int | None]],
                   progress: Progress) -> type[ClientConnection]:
    """A websockets connection class that records (time, close code received) when it ends.

    Passed to :func:`wirehub.connect` as ``create_connection``: the code is the
    one in the server's close frame, None when the TCP connection just dropped.
    """

    class Recording(ClientConnection):
        def connection_lost(self, exc: Exception | None) -> None:
            rcvd = self.protocol.close_rcvd
            closes.append((time.monotonic(), None if rcvd is None else int(rcvd.code)))
            super().connection_lost(exc)
            progress.changed()

    return Recording


class Subscriber:
    """A wirehub client subscribed to one channel, recording ``(n, offset)`` of each message."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.got: list[tuple[int, int]] = []
        #: for each message in ``got``: which connection (0: the first) delivered it
        self.conn_of: list[int] = []
        self.closes: list[tuple[float, int | None]] = []
        #: the node of each connection, from its welcome
        self.nodes: list[str] = []
        #: the last offset received before each connection was lost
        self.offset_at_drop: list[int | None] = []
        self.client: wirehub.Client
        self.sub: wirehub.Subscription
        self._task: asyncio.Task[None] | None = None

    async def start(self, stack: contextlib.AsyncExitStack, url: str, channel: str,
                    unit: float) -> Subscriber:
        self.client = wirehub.connect(  # nothing happens on the network yet
            url, backoff_base=0.1, backoff_cap=0.5, request_timeout=unit, open_timeout=unit,
            on_state_change=self._state_changed,
            create_connection=close_recorder(self.closes, self.progress))
        await stack.enter_async_context(self.client)
        self.sub = await self.client.subscribe(channel)
        self._task = asyncio.ensure_future(self._consume())
        stack.push_async_callback(self._stop)
        return self

    def problems(self, sent: list[tuple[int, int]]) -> str:
        """What differs from ``sent``: duplicates, missing and misordered messages."""
        if self.got == sent:
            return ""
        seen: dict[int, list[int]] = {}
        for (_, offset), conn in zip(self.got, self.conn_of, strict=True):
            seen.setdefault(offset, []).append(conn)
        dups = {offset: conns for offset, conns in seen.items() if len(conns) > 1}
        missing = sorted({offset for _, offset in sent} - set(seen))
        order = [offset for _, offset in self.got]
        misordered = [b for a, b in itertools.pairwise(order) if b < a]
        return (f"nodes {self.nodes}, offset at each drop {self.offset_at_drop}: "
                f"duplicates (offset: connections) {dups}, missing {missing}, "
                f"out of order {misordered}, received {len(self.got)} of {len(sent)}")

    @property
    def node(self) -> str:
        return self.nodes[-1]

    @property
    def settled(self) -> bool:
        """Connected and subscribed (after any reconnection)."""
        return self.client.state is ConnectionState.OPEN

    def _state_changed(self, old: ConnectionState, new: ConnectionState) -> None:
        if old is ConnectionState.OPEN:
            self.offset_at_drop.append(self.sub.offset)
        elif new is ConnectionState.OPEN:  # the welcome of a new connection (or the first)
            self.nodes.append(self.client.node or "")
        self.progress.changed()

    async def _consume(self) -> None:
        async for message in self.sub:
            self.got.append((message.data["n"], message.offset))
            self.conn_of.append(len(self.nodes) - 1)
            self.progress.changed()

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Publisher:
    """Publishes ``{"n": 1}``, ``{"n": 2}``... at a steady pace until told how many."""

    def __init__(self, client: wirehub.Client, channel: str, progress: Progress) -> None:
        self.client = client
        self.channel = channel
        self.progress = progress
        #: (n, offset) of every message published, in order
        self.sent: list[tuple[int, int]] = []
        self.limit: int | None = None
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        n = 0
        while self.limit is None or n < self.limit:
            n += 1
            offset = await self.client.publish(self.channel, {"n": n})
            self.sent.append((n, offset))
            self.progress.changed()
            await asyncio.sleep(PACE)  # pacing a steady stream, not waiting for an event

    async def finish(self, more: int, unit: float) -> list[tuple[int, int]]:
        """Publish ``more`` messages after those sent so far, then stop; return them all."""
        self.limit = len(self.sent) + more
        async with asyncio.timeout(unit):
            await self._task
        return self.sent

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

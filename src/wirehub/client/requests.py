"""Matching replies to requests: ids, pending futures, and request deadlines.

Every request the client sends carries a fresh integer ``id``; the server
repeats it in the ``reply``, ``pong`` or ``error`` frame that answers it
(docs/protocol.md). :class:`RequestTable` keeps one future per id until the
answer comes, the deadline passes, or the connection drops. It does no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConnectionClosed, RequestError, RequestTimeout

__all__ = ["Pending", "RequestTable", "deadline"]


@dataclass(slots=True)
class Pending:
    """A request waiting for its answer."""

    op: str
    future: asyncio.Future[Any]
    #: runs when the reply is handled, before any later frame (subscribe uses it)
    on_result: Callable[[Any], None] | None = None


@contextlib.asynccontextmanager
async def deadline(op: str, request_id: Any, timeout: float) -> AsyncIterator[None]:
    """Raise :class:`RequestTimeout` if the block takes longer than ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError:
        raise RequestTimeout(op, request_id, timeout) from None


class RequestTable:
    """Pending requests by id, for one client (across its connections)."""

    __slots__ = ("_ids", "_pending")

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int | str, Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def next_id(self) -> int:
        return next(self._ids)

    @contextlib.contextmanager
    def expect(self, request_id: int, op: str,
               on_result: Callable[[Any], None] | None = None) -> Iterator[asyncio.Future[Any]]:
        """Register ``request_id`` for the duration of the block; yield its future."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = Pending(op, future, on_result)
        try:
            yield future
        finally:
            self._pending.pop(request_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # mark retrieved: no "never retrieved" warning
            else:
                future.cancel()

    def resolve(self, request_id: Any, result: Any) -> bool:
        """Answer a request with ``result``; False if nobody waits for that id."""
        pending = self._pending.get(request_id) if request_id is not None else None
        if pending is None or pending.future.done():
            return False
        if pending.on_result is not None:
            pending.on_result(result)
        pending.future.set_result(result)
        return True

    def reject(self, request_id: Any, code: str, message: str) -> bool:
        """Fail a request with the server's ``error``; False if nobody waits for it."""
        pending = self._pending.get(request_id) if request_id is not None else None
        if pending is None or pending.future.done():
            return False
        pending.future.set_exception(RequestError(code, message, request_id=request_id))
        return True

    def fail_all(self, closed: ConnectionClosed) -> None:
        """The connection is gone: every pending request fails (none is resent)."""
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(
                    ConnectionClosed(closed.code, closed.reason, final=closed.final))

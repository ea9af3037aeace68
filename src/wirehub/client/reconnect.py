"""Keeping a client connected: the supervisor task and its reconnect loop.

One supervisor task per :class:`~wirehub.client.Client` waits for the current
connection's reader to end, then decides, as house rule 6 asks, "fatal or
retryable?":

* final (a final close code, ``reconnect=False``, or our own ``close()``):
  the client finishes for good;
* retryable (TCP lost, 1001/1011/1012/1013, 4000-4499, HTTP 429/5xx on the
  upgrade): wait the next delay of :func:`~wirehub.client.backoff.backoff`,
  open a new connection, resubscribe every channel, and only then go ``OPEN``.

The backoff is told whether the connection just lost had been welcomed, which
resets its growth; repeated failed attempts keep growing towards the cap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from ..core.envelope import Since, Subscribe
from ..core.state import ConnectionState, StateEvent, StateMachine
from ..exceptions import ConnectionClosed, RequestError, RequestTimeout, WirehubError
from .subscription import SubscriptionSet
from .wire import Session, should_retry

__all__ = ["Reconnecting"]

log = logging.getLogger("wirehub.client")


class Reconnecting:
    """The supervisor half of :class:`~wirehub.client.Client` (a mixin)."""

    url: str
    reconnect: bool
    reconnects: int
    _sm: StateMachine
    _subs: SubscriptionSet
    _session: Session | None
    _reader: asyncio.Task[ConnectionClosed] | None
    _closing: bool
    _delays: Generator[float, bool | None, None]
    _delays_started: bool
    on_recovery_failed: Callable[[str], Any] | None

    if TYPE_CHECKING:  # provided by Client
        async def _open_session(self) -> Session: ...
        def _attach(self, session: Session) -> None: ...
        def _finish(self, closed: ConnectionClosed) -> None: ...
        async def _call(self, op: str, make: Callable[[int], Any], *,
                        session: Session | None = None,
                        on_result: Callable[[Any], None] | None = None) -> Any: ...

    async def _supervise(self) -> None:
        """Watch the connection; reconnect after a retryable loss, else finish."""
        try:
            await self._watch()
        except Exception as exc:  # our bug: do not leave callers waiting forever
            log.exception("the client's connection supervisor failed")
            if self._session is not None:
                self._session.ws.transport.abort()
            self._finish(ConnectionClosed(None, f"client failure: {exc!r}", final=True))

    async def _watch(self) -> None:
        while True:
            assert self._reader is not None
            closed = await self._reader
            self._session = None
            if closed.code is not None and self._sm.state is ConnectionState.OPEN:
                self._sm.fire(StateEvent.CLOSE_STARTED)  # a close frame was exchanged
            self._sm.fire(StateEvent.CONNECTION_LOST)
            if closed.final or self._closing:
                self._finish(closed)
                return
            log.info("connection to %s lost (%s); reconnecting", self.url, closed)
            if not await self._reconnect():
                return

    def _next_delay(self, good: bool) -> float:
        if not self._delays_started:
            self._delays_started = True
            return next(self._delays)
        return self._delays.send(good)

    async def _reconnect(self) -> bool:
        """Try until connected (True) or a final failure (False, client finished)."""
        good = True  # the connection just lost had been welcomed
        while True:
            delay = self._next_delay(good)
            good = False
            await asyncio.sleep(delay)
            self._sm.fire(StateEvent.RECONNECT)
            try:
                await self._establish()
            except WirehubError as exc:
                self._sm.fire(StateEvent.CONNECTION_LOST)
                if not should_retry(exc) or not self.reconnect:
                    log.warning("giving up reconnecting to %s: %s", self.url, exc)
                    self._finish(ConnectionClosed(getattr(exc, "code", None), str(exc),
                                                  final=True))
                    return False
                log.info("reconnecting to %s failed: %s", self.url, exc)
                continue
            self.reconnects += 1
            self._sm.fire(StateEvent.HANDSHAKE_DONE)
            return True

    async def _establish(self) -> None:
        """Open a new session and resubscribe every channel on it."""
        session = await self._open_session()
        self._attach(session)
        try:
            await self._resubscribe(session)
        except BaseException as exc:
            session.ws.transport.abort()
            assert self._reader is not None
            closed = await asyncio.shield(self._reader)
            self._session = None
            if isinstance(exc, RequestTimeout):
                raise ConnectionClosed(None, f"resubscribing timed out: {exc}") from exc
            if isinstance(exc, WirehubError) and not isinstance(exc, ConnectionClosed):
                raise closed from exc
            raise

    async def _resubscribe(self, session: Session) -> None:
        """Subscribe every channel again from the last position seen (recovery).

        The server replays what was published meanwhile, in order, before any
        newer message; ``recovered: false`` means it could not, and
        ``on_recovery_failed(channel)`` tells the application to resync.
        """
        channels = self._subs.channels()
        positions = {ch: self._subs.since(ch) for ch in channels}

        def request(rid: int, ch: str) -> Subscribe:
            pos = positions[ch]
            since = None if pos is None else Since(offset=pos["offset"], epoch=pos["epoch"])
            return Subscribe(id=rid, channel=ch, since=since)

        def answered(result: Any, ch: str) -> None:
            self._subs.positioned(ch, result)
            if positions[ch] is not None and isinstance(result, dict) \
                    and result.get("recovered") is False:
                log.warning("could not recover the messages missed on %s", ch)
                self._subs.recovery_failed(ch)
                if self.on_recovery_failed is not None:
                    try:
                        self.on_recovery_failed(ch)
                    except Exception:
                        log.exception("on_recovery_failed callback failed")

        results = await asyncio.gather(
            *(self._call("subscribe", lambda rid, ch=ch: request(rid, ch), session=session,
                         on_result=lambda result, ch=ch: answered(result, ch))
              for ch in channels),
            return_exceptions=True,
        )
        failure: BaseException | None = None
        for channel, result in zip(channels, results, strict=True):
            if isinstance(result, RequestError):
                log.warning("resubscribing %s refused: %s", channel, result)
                self._subs.end_channel(channel, result)
            elif isinstance(result, BaseException):
                failure = failure or result
        if failure is not None:
            raise failure

"""The Python client of protocol v1, with automatic reconnection.

::

    async with wirehub.connect("ws://127.0.0.1:8765") as client:
        sub = await client.subscribe("news")
        await client.publish("news", {"title": "hello"})
        async for message in sub:
            print(message.data)

Lifecycle (states from :mod:`wirehub.core.state`, ``on_state_change(old, new)``
is called on every change)::

    CONNECTING --welcome--> OPEN --close frame--> CLOSING --TCP gone--> CLOSED
        ^                     \\____________ connection lost ___________/  |
        |                                                                  |
        +--------- RECONNECT after a backoff delay, if retryable ---------+

* The first connection attempt is not retried: a wrong URL or a server that
  is down fails :meth:`Client.open` at once.
* After that, a lost connection or a retryable close code (see
  :func:`wirehub.core.codes.is_retryable`) starts the reconnect loop, driven by
  :func:`wirehub.client.backoff.backoff`. On the new connection the client
  resubscribes every channel and only then reports ``OPEN``: once ``OPEN``,
  every :class:`~wirehub.client.subscription.Subscription` is live again.
* Requests pending when the connection drops fail with
  :class:`~wirehub.exceptions.ConnectionClosed` (``final=False``); they are not
  resent. Calls made while reconnecting wait for ``OPEN`` within
  ``request_timeout``.
* A final close code (1000, 1008, 1009, 4500-4999...), a refused upgrade
  (HTTP 4xx), ``reconnect=False`` or :meth:`Client.close` ends the client: every
  pending and later call raises ``ConnectionClosed(final=True)``; subscriptions
  end (see :mod:`wirehub.client.subscription`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Generator, Mapping
from typing import Any

import msgspec
import websockets

from ..core.codec import JSON
from ..core.envelope import (
    Error,
    MessagePush,
    Ping,
    Pong,
    Publish,
    Refresh,
    Reply,
    Send,
    Subscribe,
    Unsubscribe,
)
from ..core.state import ConnectionState, StateEvent, StateMachine
from ..exceptions import ConfigError, ConnectionClosed, WirehubError
from .backoff import backoff
from .reconnect import Reconnecting
from .requests import RequestTable, deadline
from .subscription import Subscription, SubscriptionSet
from .wire import Session, closed_from, normalize_url, open_connection

__all__ = ["Client", "StateCallback", "connect"]

log = logging.getLogger("wirehub.client")

StateCallback = Callable[[ConnectionState, ConnectionState], None]
_OPEN = ConnectionState.OPEN


class Client(Reconnecting):
    """A protocol v1 connection that reconnects and resubscribes by itself.

    Use ``async with connect(url) as client`` or ``client = await connect(url)``
    (then ``await client.close()``). ``url`` may be the server's base URL
    (``ws://host:port``, ``/ws`` is added) or a full one; ``http(s)`` is
    accepted for ``ws(s)``. Extra keyword arguments go to
    :func:`websockets.asyncio.client.connect` (``ssl``, ``proxy``...).
    ``ping_interval`` and ``ping_timeout`` configure websockets' keepalive pings
    (RFC 6455 §5.5.2), which detect a dead TCP connection; ``None`` disables them.
    """

    def __init__(
        self,
        url: str,
        *,
        subprotocol: str = JSON.name,
        headers: Mapping[str, str] | None = None,
        reconnect: bool = True,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        request_timeout: float = 10.0,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 5.0,
        max_size: int | None = 2**20,
        on_state_change: StateCallback | None = None,
        on_recovery_failed: Callable[[str], Any] | None = None,
        token: str | Callable[[], Any] | None = None,
        on_push: Callable[[dict[str, Any]], Any] | None = None,
        **ws_options: Any,
    ) -> None:
        self.url = normalize_url(url)
        for key, value in (("backoff_base", backoff_base), ("backoff_cap", backoff_cap),
                           ("request_timeout", request_timeout), ("open_timeout", open_timeout)):
            if not value > 0:
                raise ConfigError(key, value, "a positive number of seconds")
        self.subprotocol = subprotocol
        self.headers = dict(headers or {})
        self.reconnect = reconnect
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self._ws_options: dict[str, Any] = {
            "ping_interval": ping_interval, "ping_timeout": ping_timeout,
            "close_timeout": close_timeout, "max_size": max_size, **ws_options,
        }
        self._on_state_change = on_state_change
        #: called with a channel whose missed messages could not be recovered after a
        #: reconnect (history window exceeded or a new epoch): resync it yourself
        self.on_recovery_failed = on_recovery_failed
        #: a JWT, or a function (sync or async) returning one: sent as
        #: ``Authorization: Bearer`` on every (re)connection, and called again when
        #: the server asks for a refresh before the token expires
        self.token = token
        #: called with join / leave / event pushes (plain dicts)
        self.on_push = on_push
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sm = StateMachine(ConnectionState.CONNECTING)
        self._sm.add_listener(self._state_changed)
        self._delays = backoff(backoff_base, backoff_cap)
        self._delays_started = False
        self._requests = RequestTable()
        self._subs = SubscriptionSet()
        self._waiters: list[asyncio.Future[None]] = []
        self._session: Session | None = None
        self._reader: asyncio.Task[ConnectionClosed] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._started = False
        self._closing = False
        self._final: ConnectionClosed | None = None
        #: from the latest ``welcome``; the client id changes on every reconnection
        self.client_id: str | None = None
        self.node: str | None = None
        #: the server's ping interval in seconds (it pings us; websockets answers)
        self.server_ping_interval: float | None = None
        #: how many times the client reconnected
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"<Client {self.url} {self.state.name} client={self.client_id}>"

    # -- properties ----------------------------------------------------------------------
    @property
    def state(self) -> ConnectionState:
        return self._sm.state

    @property
    def closed(self) -> bool:
        """True once the client is done for good (it will not reconnect)."""
        return self._final is not None

    @property
    def close_code(self) -> int | None:
        """The close code that ended the client (``None`` while usable or if TCP dropped)."""
        return None if self._final is None else self._final.code

    @property
    def close_reason(self) -> str:
        return "" if self._final is None else self._final.reason

    @property
    def channels(self) -> list[str]:
        """Channels with at least one active subscription."""
        return self._subs.channels()

    # -- open and close ------------------------------------------------------------------
    def __await__(self) -> Generator[Any, None, Client]:
        return self.open().__await__()

    async def __aenter__(self) -> Client:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> Client:
        """Connect and wait for the welcome; raises at once if that fails."""
        if self._started:
            await self._wait_open()
            return self
        self._started = True
        try:
            session = await self._open_session()
        except WirehubError as exc:
            self._sm.fire(StateEvent.CONNECTION_LOST)
            if isinstance(exc, ConnectionClosed):
                exc.final = True
            self._finish(ConnectionClosed(getattr(exc, "code", None), str(exc), final=True))
            raise
        if self._final is not None:  # close() was called while we were connecting
            await session.ws.close()
            raise ConnectionClosed(self._final.code, self._final.reason, final=True)
        self._attach(session)
        self._sm.fire(StateEvent.HANDSHAKE_DONE)
        self._supervisor = asyncio.ensure_future(self._supervise())
        return self

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` (RFC 6455 §7.4.1) and stop reconnecting."""
        if self._closing or self._final is not None:
            await self.wait_closed()
            return
        self._closing = True
        session, supervisor = self._session, self._supervisor
        if session is not None and self._sm.state is _OPEN:
            self._sm.fire(StateEvent.CLOSE_STARTED)
            await session.ws.close(code, reason)
            if supervisor is not None:
                await asyncio.gather(supervisor, return_exceptions=True)
        elif supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        if self._sm.state is not ConnectionState.CLOSED:
            self._sm.fire(StateEvent.CONNECTION_LOST)
        self._finish(ConnectionClosed(code, reason, final=True))

    async def wait_closed(self) -> ConnectionClosed:
        """Wait until the client is done for good; return why."""
        while self._final is None:
            await self._wait_change()
        return self._final

    # -- requests ------------------------------------------------------------------------
    async def subscribe(self, channel: str) -> Subscription:
        """Subscribe to ``channel``; messages published from now on are yielded."""
        sub = Subscription(self, channel)

        def joined(result: Any) -> None:
            # in the reader, before any message of the channel is dispatched
            sub._positioned(result if isinstance(result, Mapping) else {})
            self._subs.add(sub)

        await self._call("subscribe", lambda rid: Subscribe(id=rid, channel=channel),
                         on_result=joined)
        return sub

    async def publish(self, channel: str, data: Any = None) -> int:
        """Publish ``data`` on ``channel``; return the message's offset."""
        result = await self._call("publish",
                                  lambda rid: Publish(id=rid, channel=channel, data=data))
        return int(result["offset"])

    async def send(self, type: str, data: Any = None) -> Any:
        """Send a typed message to the server app's handler; return its answer."""
        return await self._call("send", lambda rid: Send(id=rid, type=type, data=data))

    async def ping(self) -> float:
        """Round trip of a protocol ``ping`` (not a WebSocket ping), in seconds."""
        async with deadline("ping", None, self.request_timeout):
            await self._wait_open()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._call("ping", lambda rid: Ping(id=rid))
        return loop.time() - start

    async def _unsubscribe(self, sub: Subscription) -> None:
        was_last = self._subs.discard(sub)
        sub._end()
        if was_last and self._sm.state is _OPEN and self._final is None:
            # after a drop the next connection simply does not resubscribe it
            with contextlib.suppress(ConnectionClosed):
                await self._call("unsubscribe",
                                 lambda rid: Unsubscribe(id=rid, channel=sub.channel))

    async def _call(self, op: str, make: Callable[[int], Any], *,
                    session: Session | None = None,
                    on_result: Callable[[Any], None] | None = None) -> Any:
        """Send one request with a fresh id and wait for its reply."""
        rid = self._requests.next_id()
        async with deadline(op, rid, self.request_timeout):
            if session is None:
                session = await self._wait_open()
            payload = session.codec.encode(make(rid))
            with self._requests.expect(rid, op, on_result) as future:
                try:
                    await session.ws.send(payload, text=not session.codec.binary)
                except websockets.ConnectionClosed as exc:
                    raise self._closed(exc.rcvd, exc.sent) from exc
                return await future

    async def _wait_open(self) -> Session:
        while True:
            if self._final is not None:
                f = self._final
                raise ConnectionClosed(f.code, f.reason, final=True)
            if self._sm.state is _OPEN and self._session is not None:
                return self._session
            if not self._started:
                raise RuntimeError("the client is not open: use 'async with connect(url)' "
                                   "or 'await client.open()' first")
            await self._wait_change()

    async def _wait_change(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(future)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    # -- one connection ------------------------------------------------------------------
    async def _token(self) -> str:
        token = self.token() if callable(self.token) else self.token
        if inspect.isawaitable(token):
            token = await token
        return str(token)

    async def _open_session(self) -> Session:
        headers = self.headers
        if self.token is not None:
            headers = {**headers, "Authorization": f"Bearer {await self._token()}"}
        return await open_connection(self.url, subprotocol=self.subprotocol,
                                     headers=headers, open_timeout=self.open_timeout,
                                     options=self._ws_options)

    async def _refresh(self) -> None:
        """The server asks for a new token before this one expires: send it."""
        try:
            token = await self._token()
            await self._call("refresh", lambda rid: Refresh(id=rid, token=token))
        except WirehubError as exc:
            log.warning("refreshing the token failed: %s", exc)
        except Exception:
            log.exception("the token callback failed")

    def _attach(self, session: Session) -> None:
        self._session = session
        welcome = session.welcome
        self.client_id, self.node = welcome.client, welcome.node
        self.server_ping_interval = welcome.ping_interval
        self._reader = asyncio.ensure_future(self._read(session))

    def _closed(self, rcvd: Any, sent: Any) -> ConnectionClosed:
        closed = closed_from(rcvd, sent, closing=self._closing)
        closed.final = closed.final or not self.reconnect
        return closed

    async def _read(self, session: Session) -> ConnectionClosed:
        """Dispatch frames until the connection closes; fail what was pending."""
        ws, decode = session.ws, session.decoder.decode
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                payload = await ws.recv(decode=False)
                try:
                    self._dispatch(decode(payload))
                except msgspec.DecodeError as exc:
                    log.warning("ignoring an undecodable frame from the server: %s", exc)
                except Exception:
                    log.exception("error while handling a frame from the server")
        closed = self._closed(ws.protocol.close_rcvd, ws.protocol.close_sent)
        self._requests.fail_all(closed)
        return closed

    def _dispatch(self, frame: Any) -> None:
        if isinstance(frame, MessagePush):
            self._subs.deliver(frame)
        elif isinstance(frame, Reply):
            self._requests.resolve(frame.id, frame.result)
        elif isinstance(frame, Pong):
            self._requests.resolve(frame.id, None)
        elif isinstance(frame, Error):
            if not self._requests.reject(frame.id, frame.code, frame.message):
                log.warning("server error (id %r): %s: %s", frame.id, frame.code, frame.message)
        elif isinstance(frame, dict) and frame.get("op") == "refresh":
            if self.token is not None and callable(self.token):
                task = asyncio.ensure_future(self._refresh())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif isinstance(frame, dict) and frame.get("op") in ("join", "leave", "event"):
            if self.on_push is not None:
                try:
                    self.on_push(frame)
                except Exception:
                    log.exception("on_push callback failed")
        else:
            log.debug("ignoring frame %r", frame)

    def _finish(self, closed: ConnectionClosed) -> None:
        """The client is done: fail pending calls, end subscriptions, wake waiters."""
        if self._final is not None:
            return
        final = self._final = ConnectionClosed(closed.code, closed.reason, final=True)
        self._requests.fail_all(final)
        # a close() we were asked for ends iteration quietly; anything else raises
        self._subs.end_all(lambda: None if self._closing else
                           ConnectionClosed(final.code, final.reason, final=True))
        self._wake()

    def _state_changed(self, old: ConnectionState, new: ConnectionState) -> None:
        log.debug("%s: %s -> %s", self.url, old.name, new.name)
        self._wake()
        if self._on_state_change is not None:
            try:
                self._on_state_change(old, new)
            except Exception:
                log.exception("on_state_change callback failed")


def connect(
    url: str,
    *,
    subprotocol: str = JSON.name,
    headers: Mapping[str, str] | None = None,
    reconnect: bool = True,
    backoff_base: float = 0.5,
    backoff_cap: float = 30.0,
    request_timeout: float = 10.0,
    open_timeout: float = 10.0,
    on_state_change: StateCallback | None = None,
    **options: Any,
) -> Client:
    """A :class:`Client` for ``url``: ``async with connect(url) as c`` or ``await connect(url)``.

    Nothing happens on the network until it is entered or awaited. See
    :class:`Client` for ``ping_interval``, ``max_size`` and the other options.
    """
    return Client(url, subprotocol=subprotocol, headers=headers, reconnect=reconnect,
                  backoff_base=backoff_base, backoff_cap=backoff_cap,
                  request_timeout=request_timeout, open_timeout=open_timeout,
                  on_state_change=on_state_change, **options)

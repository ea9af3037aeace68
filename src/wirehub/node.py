"""The node joins the local hub to the broker and runs the app's handlers.

It is the only layer that knows both: it subscribes the broker on a channel's
first local subscriber (rolling the hub back if that fails), unsubscribes
after the last one leaves (after a short delay and a re-check), turns
requests into replies, and fans broker publications out through the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from .app import App
from .auth import Authenticator, AuthError, Identity, allowed
from .brokers.base import Broker, Publication
from .continuity import Continuity
from .core.codec import carry_check
from .core.codes import CloseCode, ErrorCode
from .core.envelope import (
    Connect,
    Error,
    HistoryRequest,
    MessagePush,
    Ping,
    Pong,
    Presence,
    PresenceStats,
    Publish,
    Refresh,
    Reply,
    Request,
    Send,
    Subscribe,
    Unsubscribe,
    namespace_of,
)
from .core.hub import Hub
from .core.namespaces import Permission
from .exceptions import BrokerError, RequestError, WirehubError
from .metrics import Stats

if TYPE_CHECKING:
    from .config import ServerConfig
    from .transport.connection import Connection

__all__ = ["Node"]

log = logging.getLogger("wirehub.node")


def default_node_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Node:
    """One wirehub process: hub + broker + app."""

    def __init__(
        self,
        app: App,
        broker: Broker,
        *,
        name: str | None = None,
        unsubscribe_delay: float = 1.0,
        auth: Authenticator | None = None,
        max_subscriptions: int = 1_000,
    ) -> None:
        self.app = app
        self.broker = broker
        self.name = name or default_node_name()
        self.hub = Hub()
        self.stats = Stats()
        self.started_at = time.time()
        self.unsubscribe_delay = unsubscribe_delay
        self.auth = auth or Authenticator()
        self.max_subscriptions = max_subscriptions
        # channel -> future resolved once the broker delivers it to this node
        self._broker_subs: dict[str, asyncio.Future[None]] = {}
        self._unsub_timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.namespaces = app.namespaces
        broker.set_handler(self)
        self.continuity = Continuity(broker, self._deliver_publication, self.resync)
        if hasattr(broker, "on_reconnected"):
            broker.on_reconnected = self.continuity.broker_reconnected
        app.bind(self)

    @classmethod
    def from_config(cls, app: App, config: ServerConfig) -> Node:
        """The node ``wirehub serve`` and the ASGI adapter run: broker and auth from settings."""
        from .brokers import create_broker

        return cls(
            app,
            create_broker(config.broker, history_max_bytes=config.history_max_bytes),
            name=config.node_name,
            unsubscribe_delay=config.unsubscribe_delay,
            auth=Authenticator.from_settings(config.jwt_secret, config.jwt_public_key,
                                             audience=config.jwt_audience,
                                             issuer=config.jwt_issuer),
            max_subscriptions=config.max_subscriptions,
        )

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        await self.broker.start()
        await self.app.run_hooks(self.app.startup_hooks, self.app)

    async def close(self) -> None:
        await self.app.run_hooks(self.app.shutdown_hooks, self.app)
        for timer in self._unsub_timers.values():
            timer.cancel()
        self.continuity.close()
        for task in list(self._tasks):
            task.cancel()
        await self.broker.close()

    def new_client_id(self) -> str:
        return secrets.token_urlsafe(12)

    @property
    def uptime(self) -> float:
        return time.time() - self.started_at

    # -- connections ---------------------------------------------------------------
    def add_connection(self, conn: Connection) -> None:
        self.hub.add_client(conn)

    async def remove_connection(self, conn: Connection) -> None:
        channels = list(conn.channels)
        conn.channels.clear()
        for channel in self.hub.remove_client(conn, channels):
            self._schedule_broker_unsubscribe(channel)
        for channel in channels:
            if self.namespaces.for_channel(channel).presence:
                await self._leave(conn, channel)
        await self._run_hook_safely(self.app.disconnect_hooks, conn)

    async def connected(self, conn: Connection) -> None:
        await self._run_hook_safely(self.app.connect_hooks, conn)

    async def _run_hook_safely(self, hooks: list[Any], conn: Connection) -> None:
        try:
            await self.app.run_hooks(hooks, conn)
        except Exception:
            log.exception("client %s: connection hook failed", conn.client_id)

    # -- requests --------------------------------------------------------------------
    async def handle(self, conn: Connection, req: Request) -> Any:
        """Answer one request: the envelope to send back, or None for no reply.

        Raises :class:`RequestError` for an error the client caused.
        """
        identity = conn.identity
        if identity is not None and identity.expires_at <= time.time() \
                and not isinstance(req, Refresh):
            conn.close_soon(CloseCode.TOKEN_EXPIRED, "token expired")
            raise RequestError(ErrorCode.UNAUTHORIZED, "the token has expired")
        if conn.identity is None and self.auth.enabled and not isinstance(req, Connect | Ping):
            raise RequestError(ErrorCode.UNAUTHORIZED,
                               "authenticate first: send {\"op\": \"connect\", \"token\": ...}")
        if isinstance(req, Publish):
            self._check(conn, "publish", req.channel)
            data = req.data
            problem = carry_check(data, conn.codec)
            if problem is not None:
                raise problem
            hook = self.app.publish_hooks.get(namespace_of(req.channel))
            if hook is not None:
                data = hook(conn, req.channel, data)
                if inspect.isawaitable(data):
                    data = await data
            pub = await self.publish(req.channel, data, client=conn.client_id,
                                     size=conn.last_frame_size)
            return self._reply(req, {"offset": pub.offset})
        if isinstance(req, Subscribe):
            self._check(conn, "subscribe", req.channel)
            if req.channel not in conn.channels and len(conn.channels) >= self.max_subscriptions:
                raise RequestError(ErrorCode.TOO_LARGE,
                                   f"at most {self.max_subscriptions} subscriptions per connection")
            await self.subscribe(conn, req.channel, since=req.since, max_rate=req.max_rate,
                                 request_id=req.id)
            return None
        if isinstance(req, Unsubscribe):
            await self.unsubscribe(conn, req.channel)
            return self._reply(req, {})
        if isinstance(req, Send):
            return self._reply(req, await self._send(conn, req))
        if isinstance(req, Ping):
            return Pong(id=req.id)
        if isinstance(req, HistoryRequest):
            self._check(conn, "history", req.channel)
            return self._reply(req, await self._history(req))
        if isinstance(req, Connect | Refresh):
            return self._authenticate(conn, req)
        if isinstance(req, Presence | PresenceStats):
            self._check(conn, "presence_read", req.channel)
        if isinstance(req, Presence):
            entries = await self._presence(req.channel)
            return self._reply(req, {"clients": list(entries.values())})
        if isinstance(req, PresenceStats):
            entries = await self._presence(req.channel)
            users = {e.get("user") or e["client"] for e in entries.values()}
            return self._reply(req, {"clients": len(entries), "users": len(users)})
        raise RequestError(ErrorCode.UNKNOWN_OP, f"op {type(req).__name__} is not handled")

    def _check(self, conn: Connection, action: str, channel: str) -> None:
        """Refuse with ``forbidden`` unless the namespace's rule lets ``conn`` do ``action``.

        The same answer whether or not the channel exists or has messages.
        """
        rule = getattr(self.namespaces.for_channel(channel), action)
        if not allowed(rule, channel, conn.identity):
            verb = action.replace("_read", "").replace("_", " ")
            raise RequestError(ErrorCode.FORBIDDEN, f"not allowed to {verb} on this channel")

    def _authenticate(self, conn: Connection, req: Connect | Refresh) -> Reply | None:
        """``connect`` (first authentication) and ``refresh`` (a new token, same user)."""
        if not self.auth.enabled:
            raise RequestError(ErrorCode.BAD_REQUEST, "this server does not use authentication")
        if isinstance(req, Connect) and conn.identity is not None:
            raise RequestError(ErrorCode.BAD_REQUEST, "already authenticated; use refresh")
        if isinstance(req, Refresh) and conn.identity is None:
            raise RequestError(ErrorCode.UNAUTHORIZED, "authenticate with connect first")
        try:
            identity = self.auth.verify(req.token)
            if conn.identity is not None and identity.user != conn.identity.user:
                raise AuthError("a refreshed token must be for the same user")
        except AuthError as exc:
            log.info("client %s: authentication failed: %s", conn.client_id, exc)
            conn.identity = None  # nothing more is served on the old credentials
            conn.send(Error(id=req.id, code=ErrorCode.UNAUTHORIZED, message=str(exc)))
            conn.close_soon(CloseCode.UNAUTHORIZED, "unauthorized", flush=True)
            return None
        self.identify(conn, identity)
        return self._reply(req, {"user": identity.user, "expires": identity.expires_at})

    @staticmethod
    def identify(conn: Connection, identity: Identity) -> None:
        conn.identity = identity
        conn.user = identity.user
        conn.refresh_asked = False

    @staticmethod
    def _reply(req: Request, result: Any) -> Reply | None:
        # A request without an id is fire-and-forget: errors are still sent.
        return None if req.id is None else Reply(id=req.id, result=result)

    async def subscribe(
        self,
        conn: Connection,
        channel: str,
        *,
        since: Any = None,
        max_rate: float | None = None,
        request_id: Any = None,
    ) -> None:
        """Subscribe ``conn``: reply, then recovered or snapshot messages, then live ones.

        Pushes that arrive while history is read are held by the hub and sent
        after it, skipping any the history already covered: no gap, no duplicate.
        """
        opts = self.namespaces.for_channel(channel)
        if channel in conn.channels:  # already subscribed: answer where the stream is
            pos = await self.broker.position(channel)
            if request_id is not None:
                conn.send(Reply(id=request_id, result={
                    "channel": channel, "epoch": pos.epoch, "offset": pos.offset,
                    "recovered": since is not None and since.epoch == pos.epoch
                    and since.offset == pos.offset}))
            return
        await self._ensure_broker_subscribed(channel)
        self.hub.subscribe(channel, conn, hold=True)
        conn.channels.add(channel)
        timer = self._unsub_timers.pop(channel, None)
        if timer is not None:
            timer.cancel()
        if since is not None and not allowed(opts.history, channel, conn.identity):
            since_allowed = False  # recovery reads history: no replay without that right
        else:
            since_allowed = True
        try:
            if since is not None and not since_allowed:
                pos = await self.broker.position(channel)
                hist = None
                recovered, replay = False, []
            elif since is not None:
                hist = await self.broker.history(channel, since=since.offset)
                recovered = hist.complete and hist.epoch == since.epoch
                replay = hist.publications if recovered else []
            elif opts.snapshot:
                hist = await self.broker.history(channel, limit=1)
                recovered, replay = False, hist.publications
            else:
                pos = await self.broker.position(channel)
                hist = None
                recovered, replay = False, []
            if opts.presence:  # in presence before the reply: a `presence` right after lists us
                await self._join(conn, channel)  # (our own join push is held like the rest)
        except BaseException:
            self.hub.release(channel, conn)
            conn.channels.discard(channel)
            if self.hub.unsubscribe(channel, conn):
                self._schedule_broker_unsubscribe(channel)
            raise
        offset, epoch = (hist.offset, hist.epoch) if hist is not None else (pos.offset, pos.epoch)
        conn.set_flow(channel, max_rate, opts.slow_consumer)
        if request_id is not None:
            result: dict[str, Any] = {"channel": channel, "epoch": epoch, "offset": offset}
            if since is not None:
                result["recovered"] = recovered
            conn.send(Reply(id=request_id, result=result))
        # the client has everything up to ``last``: held pushes at or below it are
        # duplicates (pub/sub may deliver what the history read already covered)
        last = since.offset if recovered else offset
        for pub in replay:
            conn.send(self._push(pub))
            last = pub.offset
        for push in self.hub.release(channel, conn, floor=(epoch, last)):
            if not isinstance(push, MessagePush) or push.offset > last:
                conn.deliver(conn.codec.encode(push), conn.codec.binary, channel)

    async def unsubscribe(self, conn: Connection, channel: str) -> None:
        if channel not in conn.channels:
            return
        conn.channels.discard(channel)
        conn.set_flow(channel, None, None)
        if self.hub.unsubscribe(channel, conn):
            self._schedule_broker_unsubscribe(channel)
        if self.namespaces.for_channel(channel).presence:
            await self._leave(conn, channel)

    async def _history(self, req: HistoryRequest) -> dict[str, Any]:
        opts = self.namespaces.for_channel(req.channel)
        limit = opts.history_size if req.limit is None else min(req.limit, opts.history_size)
        since = req.since.offset if req.since is not None else None
        hist = await self.broker.history(req.channel, since=since, limit=limit)
        if req.since is not None and hist.epoch != req.since.epoch:
            hist = await self.broker.history(req.channel, limit=limit)
        return {
            "messages": [self._push(p) for p in hist.publications],
            "offset": hist.offset,
            "epoch": hist.epoch,
        }

    # -- presence ----------------------------------------------------------------------
    def presence_entry(self, conn: Connection) -> dict[str, Any]:
        return {"client": conn.client_id, "user": conn.user, "info": conn.info}

    async def _presence(self, channel: str) -> dict[str, dict[str, Any]]:
        if not self.namespaces.for_channel(channel).presence:
            raise RequestError(
                ErrorCode.NOT_FOUND,
                f"presence is not enabled in namespace {namespace_of(channel)!r}",
            )
        return await self.broker.presence(channel)

    async def _join(self, conn: Connection, channel: str) -> None:
        entry = self.presence_entry(conn)
        await self.broker.add_presence(channel, conn.client_id, entry)
        await self.broker.publish_event(channel, {"op": "join", "channel": channel, **entry})

    async def refresh_presence(self, conn: Connection, channel: str) -> None:
        """Publish ``conn``'s presence entry again (after its info or user changed)."""
        if channel in conn.channels and self.namespaces.for_channel(channel).presence:
            await self._join(conn, channel)

    async def _leave(self, conn: Connection, channel: str) -> None:
        try:
            await self.broker.remove_presence(channel, conn.client_id)
            await self.broker.publish_event(
                channel, {"op": "leave", "channel": channel, **self.presence_entry(conn)}
            )
        except Exception:
            log.exception("client %s: leaving presence of %s failed", conn.client_id, channel)

    async def _send(self, conn: Connection, req: Send) -> Any:
        handler = self.app.handlers.get(req.type)
        if handler is None:
            known = ", ".join(sorted(self.app.handlers)) or "none"
            raise RequestError(
                ErrorCode.UNKNOWN_OP, f"no handler for type {req.type!r}; known types: {known}"
            )
        result = handler(conn, req.data)
        if inspect.isawaitable(result):
            result = await result
        return result

    # -- publishing -----------------------------------------------------------------
    async def publish(self, channel: str, data: Any, *, client: str | None = None,
                      size: int = 0) -> Publication:
        """Publish through the broker; every subscribed node delivers it."""
        opts = self.namespaces.for_channel(channel)
        try:
            return await self.broker.publish(
                channel, data, client=client,
                history_size=opts.history_size, history_ttl=opts.history_ttl, size=size,
            )
        except WirehubError:
            raise
        except Exception as exc:
            log.exception("broker publish to %s failed", channel)
            raise RequestError(ErrorCode.INTERNAL, "could not publish, try again") from exc

    async def publish_event(self, channel: str, event: dict[str, Any]) -> None:
        """Push an ephemeral event to the channel's subscribers on every node."""
        await self.broker.publish_event(channel, event)

    @staticmethod
    def _push(pub: Publication) -> MessagePush:
        return MessagePush(
            channel=pub.channel,
            data=pub.data,
            offset=pub.offset,
            epoch=pub.epoch,
            from_=pub.client,
            ts=pub.ts,
        )

    # -- BrokerHandler -------------------------------------------------------------------
    def on_publication(self, pub: Publication) -> None:
        self.continuity.accept(pub)

    def _deliver_publication(self, pub: Publication) -> None:
        push = self._push(pub)
        n = self.hub.broadcast(pub.channel, push)
        if n:
            self.stats.delivered(pub.ts, n)

    def resync(self, channel: str) -> None:
        """This node may have missed messages of ``channel``: its subscribers reconnect
        (close 4003, retryable) and recover with ``since``, learning of any gap."""
        for sub in self.hub.subscribers(channel):
            sub.close_soon(CloseCode.INSUFFICIENT_STATE, "resync")  # type: ignore[attr-defined]

    def on_event(self, channel: str, event: dict[str, Any]) -> None:
        if event.get("op") in ("join", "leave"):
            rule = self.namespaces.for_channel(channel).presence_read
            if rule is not Permission.ANYONE:  # only those who may read presence see it
                for sub in self.hub.subscribers(channel):
                    if allowed(rule, channel, sub.identity):  # type: ignore[attr-defined]
                        sub.send(event)  # type: ignore[attr-defined]
                return
        self.hub.broadcast(channel, event)

    # -- broker subscriptions ---------------------------------------------------------
    async def _ensure_broker_subscribed(self, channel: str) -> None:
        fut = self._broker_subs.get(channel)
        if fut is None:
            fut = self._broker_subs[channel] = asyncio.get_running_loop().create_future()
            try:
                await self.broker.subscribe(channel)
            except Exception as exc:
                del self._broker_subs[channel]
                fut.set_exception(exc)
                fut.exception()  # mark retrieved; waiters get it through await
                if isinstance(exc, BrokerError):
                    log.warning("broker subscribe to %s failed: %s", channel, exc)
                else:
                    log.exception("broker subscribe to %s failed", channel)
                raise RequestError(ErrorCode.INTERNAL, "could not subscribe, try again") from exc
            fut.set_result(None)
        else:
            try:
                await asyncio.shield(fut)
            except Exception as exc:
                raise RequestError(ErrorCode.INTERNAL, "could not subscribe, try again") from exc

    def _schedule_broker_unsubscribe(self, channel: str) -> None:
        if channel in self._unsub_timers or channel not in self._broker_subs:
            return
        loop = asyncio.get_running_loop()
        self._unsub_timers[channel] = loop.call_later(
            self.unsubscribe_delay, self._unsubscribe_if_unused, channel
        )

    def _unsubscribe_if_unused(self, channel: str) -> None:
        self._unsub_timers.pop(channel, None)
        if self.hub.has_subscribers(channel) or channel not in self._broker_subs:
            return
        del self._broker_subs[channel]
        task = asyncio.ensure_future(self._broker_unsubscribe(channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _broker_unsubscribe(self, channel: str) -> None:
        self.continuity.forget(channel)
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await self.broker.unsubscribe(channel)
            except Exception:
                log.exception("broker unsubscribe from %s failed", channel)

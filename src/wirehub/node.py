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
from .brokers.base import Broker, Publication
from .core.codes import ErrorCode
from .core.envelope import (
    MessagePush,
    Ping,
    Pong,
    Publish,
    Reply,
    Request,
    Send,
    Subscribe,
    Unsubscribe,
)
from .core.hub import Hub
from .exceptions import RequestError, WirehubError

if TYPE_CHECKING:
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
    ) -> None:
        self.app = app
        self.broker = broker
        self.name = name or default_node_name()
        self.hub = Hub()
        self.started_at = time.time()
        self.unsubscribe_delay = unsubscribe_delay
        # channel -> future resolved once the broker delivers it to this node
        self._broker_subs: dict[str, asyncio.Future[None]] = {}
        self._unsub_timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        broker.set_handler(self._on_publication)
        app.bind(self)

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        await self.broker.start()
        await self.app.run_hooks(self.app.startup_hooks, self.app)

    async def close(self) -> None:
        await self.app.run_hooks(self.app.shutdown_hooks, self.app)
        for timer in self._unsub_timers.values():
            timer.cancel()
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
        for channel in self.hub.remove_client(conn):
            self._schedule_broker_unsubscribe(channel)
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
        if isinstance(req, Publish):
            pub = await self.publish(req.channel, req.data, client=conn.client_id)
            return self._reply(req, {"offset": pub.offset})
        if isinstance(req, Subscribe):
            return await self._subscribe(conn, req)
        if isinstance(req, Unsubscribe):
            if self.hub.unsubscribe(req.channel, conn):
                self._schedule_broker_unsubscribe(req.channel)
            return self._reply(req, {})
        if isinstance(req, Send):
            return self._reply(req, await self._send(conn, req))
        if isinstance(req, Ping):
            return Pong(id=req.id)
        raise RequestError(ErrorCode.UNKNOWN_OP, f"op {type(req).__name__} is not handled")

    @staticmethod
    def _reply(req: Request, result: Any) -> Reply | None:
        # A request without an id is fire-and-forget: errors are still sent.
        return None if req.id is None else Reply(id=req.id, result=result)

    async def _subscribe(self, conn: Connection, req: Subscribe) -> Reply | None:
        channel = req.channel
        await self._ensure_broker_subscribed(channel)
        position = await self.broker.position(channel)
        # No await between joining the hub and returning the reply: the reply
        # is queued before any message of the channel reaches this client.
        self.hub.subscribe(channel, conn)
        timer = self._unsub_timers.pop(channel, None)
        if timer is not None:
            timer.cancel()
        return self._reply(
            req, {"channel": channel, "epoch": position.epoch, "offset": position.offset}
        )

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
    async def publish(self, channel: str, data: Any, *, client: str | None = None) -> Publication:
        """Publish through the broker; every subscribed node delivers it."""
        try:
            return await self.broker.publish(channel, data, client=client)
        except WirehubError:
            raise
        except Exception as exc:
            log.exception("broker publish to %s failed", channel)
            raise RequestError(ErrorCode.INTERNAL, "could not publish, try again") from exc

    def _on_publication(self, pub: Publication) -> None:
        push = MessagePush(
            channel=pub.channel,
            data=pub.data,
            offset=pub.offset,
            epoch=pub.epoch,
            from_=pub.client,
            ts=pub.ts,
        )
        self.hub.broadcast(pub.channel, push)

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
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await self.broker.unsubscribe(channel)
            except Exception:
                log.exception("broker unsubscribe from %s failed", channel)

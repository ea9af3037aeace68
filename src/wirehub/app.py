"""The application API: typed message handlers and server-side publishing.

Echo, chat and stocks are written with this API, the same one a user writes
their own app with::

    app = wirehub.App()

    @app.on("greet")
    async def greet(conn, data):
        return {"hello": data["name"]}

    # wirehub serve mymodule:app
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .core.namespaces import NamespaceOptions, Namespaces

if TYPE_CHECKING:
    from .brokers.base import Publication
    from .node import Node
    from .transport.connection import Connection

__all__ = ["App", "Handler"]

Handler = Callable[["Connection", Any], Awaitable[Any] | Any]
Hook = Callable[["Connection"], Awaitable[None] | None]
PublishHook = Callable[["Connection", str, Any], Awaitable[Any] | Any]
F = TypeVar("F", bound=Callable[..., Any])


class App:
    """A set of ``send`` handlers and lifecycle hooks, bound to a node when served."""

    def __init__(self, name: str = "app") -> None:
        self.name = name
        self.handlers: dict[str, Handler] = {}
        self.connect_hooks: list[Hook] = []
        self.disconnect_hooks: list[Hook] = []
        self.startup_hooks: list[Callable[[App], Awaitable[None] | None]] = []
        self.shutdown_hooks: list[Callable[[App], Awaitable[None] | None]] = []
        self.namespaces = Namespaces()
        self.publish_hooks: dict[str, PublishHook] = {}
        self._node: Node | None = None

    def __repr__(self) -> str:
        return f"<App {self.name} types={sorted(self.handlers)}>"

    # -- registration ----------------------------------------------------------
    def on(self, type_: str) -> Callable[[F], F]:
        """Register the handler of ``send`` requests of ``type_``.

        The handler gets ``(conn, data)``; what it returns is the reply's
        ``result``. Raise :class:`wirehub.RequestError` to answer with an error.
        """

        def register(fn: F) -> F:
            if type_ in self.handlers:
                raise ValueError(f"a handler for type {type_!r} is already registered")
            self.handlers[type_] = fn
            return fn

        return register

    def namespace(self, name: str, **options: Any) -> NamespaceOptions:
        """Set options for channels ``name:*``: see :class:`NamespaceOptions`.

        ``app.namespace("chat", presence=True, history_size=100)``
        """
        return self.namespaces.set(name, **options)

    def on_publish(self, namespace: str) -> Callable[[F], F]:
        """Check or rewrite what clients publish to ``namespace:*`` channels.

        The hook gets ``(conn, channel, data)`` and returns the data to publish;
        it raises :class:`wirehub.RequestError` to refuse. Server code
        (``app.publish``) does not go through it.
        """

        def register(fn: F) -> F:
            self.publish_hooks[namespace] = fn
            return fn

        return register

    def on_connect(self, fn: F) -> F:
        """Call ``fn(conn)`` when a client has connected (after the welcome)."""
        self.connect_hooks.append(fn)
        return fn

    def on_disconnect(self, fn: F) -> F:
        """Call ``fn(conn)`` when a client has gone."""
        self.disconnect_hooks.append(fn)
        return fn

    def on_startup(self, fn: F) -> F:
        """Call ``fn(app)`` once the node is running (start feeds here)."""
        self.startup_hooks.append(fn)
        return fn

    def on_shutdown(self, fn: F) -> F:
        """Call ``fn(app)`` when the node stops."""
        self.shutdown_hooks.append(fn)
        return fn

    def include(self, other: App) -> App:
        """Add another app's handlers and hooks to this one; return self."""
        for type_, fn in other.handlers.items():
            self.on(type_)(fn)
        self.connect_hooks += other.connect_hooks
        self.disconnect_hooks += other.disconnect_hooks
        self.startup_hooks += other.startup_hooks
        self.shutdown_hooks += other.shutdown_hooks
        self.namespaces.update(other.namespaces)
        self.publish_hooks.update(other.publish_hooks)
        other._bound_to = self  # type: ignore[attr-defined]
        return self

    # -- runtime ----------------------------------------------------------------
    @property
    def node(self) -> Node:
        node = self._node or getattr(getattr(self, "_bound_to", None), "_node", None)
        if node is None:
            raise RuntimeError(f"{self!r} is not being served yet")
        return node

    def bind(self, node: Node) -> None:
        self._node = node

    async def publish(self, channel: str, data: Any) -> Publication:
        """Publish ``data`` to ``channel`` from server code (``from`` is null)."""
        return await self.node.publish(channel, data)

    async def broadcast(self, channel: str, type_: str, data: Any) -> None:
        """Push an ephemeral ``{"op":"event","channel","type","data"}`` to subscribers.

        Not stored in history and without an offset: typing indicators and the like.
        """
        await self.node.publish_event(channel, {"op": "event", "channel": channel,
                                                "type": type_, "data": data})

    async def run_hooks(self, hooks: list[Any], arg: Any) -> None:
        for hook in hooks:
            result = hook(arg)
            if inspect.isawaitable(result):
                await result

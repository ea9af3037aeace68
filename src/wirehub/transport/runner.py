"""Start and stop a wirehub server inside a running event loop.

``wirehub serve`` uses it with signal handlers; tests and embedding code use
it directly::

    async with ServerRunner(app, ServerConfig(port=0)) as runner:
        url = runner.url  # http://127.0.0.1:PORT
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..app import App
from ..brokers import create_broker
from ..config import ServerConfig
from ..node import Node
from .server import WirehubServer

__all__ = ["ServerRunner"]


class ServerRunner:
    """One node with its aiohttp site; ``port`` is known after :meth:`start`."""

    def __init__(self, app: App, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.node = Node(app, create_broker(self.config.broker), name=self.config.node_name,
                         unsubscribe_delay=self.config.unsubscribe_delay)
        self.server = WirehubServer(self.node, self.config)
        self._runner = web.AppRunner(self.server.app, handle_signals=False, access_log=None,
                                     shutdown_timeout=1.0)
        self._site: web.TCPSite | None = None
        self.host = self.config.host
        self.port = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    async def start(self) -> ServerRunner:
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.config.host, self.config.port,
                                 reuse_address=True)
        await self._site.start()
        self.host, self.port = self._runner.addresses[0][:2]
        return self

    async def stop(self) -> None:
        """Stop accepting, close every client with 1001, stop the node."""
        self.server.accepting = False
        if self._site is not None:
            await self._site.stop()
        await self._runner.cleanup()

    async def __aenter__(self) -> ServerRunner:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

"""Start and stop a wirehub server inside a running event loop.

``wirehub serve`` uses it with signal handlers; tests and embedding code use
it directly::

    async with ServerRunner(app, ServerConfig(port=0)) as runner:
        url = runner.url  # http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiohttp import web

from ..app import App
from ..config import ServerConfig
from ..exceptions import ConfigError
from ..node import Node
from .lean import FrontProtocol
from .server import WirehubServer

__all__ = ["ServerRunner"]


def _ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """A server TLS context from ``certfile``/``keyfile``, or None for plain TCP."""
    if not config.certfile:
        if config.keyfile:
            raise ConfigError("certfile", None, "a PEM certificate file to go with keyfile")
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(config.certfile, config.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("certfile", config.certfile, f"a readable PEM certificate ({exc})"
                          ) from exc
    return ctx


class ServerRunner:
    """One node with its aiohttp site; ``port`` is known after :meth:`start`."""

    def __init__(self, app: App, config: ServerConfig | None = None) -> None:
        self.config = config = config or ServerConfig()
        self.node = Node.from_config(app, config)
        self.server = WirehubServer(self.node, config)
        self.ssl_context = _ssl_context(config)
        # aiohttp's keep-alive timer runs from the moment a connection is made, so it
        # also bounds how long a client may take to send its upgrade request.
        self._runner = web.AppRunner(self.server.app, handle_signals=False, access_log=None,
                                     shutdown_timeout=1.0,
                                     keepalive_timeout=config.handshake_timeout)
        self._site: web.TCPSite | None = None
        self._lean: asyncio.Server | None = None
        self.host = self.config.host
        self.port = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    async def start(self) -> ServerRunner:
        await self._runner.setup()
        if self.config.transport == "lean":
            await self._start_lean()
            return self
        self._site = web.TCPSite(self._runner, self.config.host, self.config.port,
                                 reuse_address=True, reuse_port=self.config.reuse_port or None,
                                 ssl_context=self.ssl_context)
        await self._site.start()
        self.host, self.port = self._runner.addresses[0][:2]
        return self

    async def _start_lean(self) -> None:
        """Listen with the front protocol: WebSockets lean, the rest to aiohttp's server."""
        aiohttp_server = self._runner.server
        assert aiohttp_server is not None
        loop = asyncio.get_running_loop()
        self._lean = await loop.create_server(
            lambda: FrontProtocol(self.server, aiohttp_server),
            self.config.host, self.config.port, ssl=self.ssl_context, reuse_address=True,
            reuse_port=self.config.reuse_port or None, backlog=128,  # as aiohttp's TCPSite
        )
        self.host, self.port = self._lean.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        """Stop accepting, close every client with 1001, stop the node."""
        self.server.accepting = False
        if self._site is not None:
            await self._site.stop()
        if self._lean is not None:
            self._lean.close()
        await self._runner.cleanup()

    async def __aenter__(self) -> ServerRunner:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

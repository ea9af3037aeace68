"""The admin view: ``GET /admin`` (a live page) and ``GET /admin/api/stats`` (JSON).

Both need the admin token (``--admin-token``): the page asks for it and sends
it as ``Authorization: Bearer``; without a token configured the admin view is
off (404). ``wirehub top URL`` reads the same JSON in a terminal.

Each node announces a summary of itself to the broker every couple of
seconds, so the view lists every node of a cluster; connections and channels
are this node's.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..exceptions import WirehubError
from ..tasks import cancel_and_wait, raise_if_cancelling

if TYPE_CHECKING:
    from .server import WirehubServer

__all__ = ["Admin"]

log = logging.getLogger("wirehub.admin")

ANNOUNCE_EVERY = 2.0


class Admin:
    def __init__(self, server: WirehubServer) -> None:
        self.server = server
        self.token = (server.config.admin_token or "").encode()
        self._last: tuple[float, int, int, int] | None = None
        self._rates = {"messages_in_per_s": 0.0, "deliveries_per_s": 0.0,
                       "publications_per_s": 0.0}
        self._task: asyncio.Task[None] | None = None

    def mount(self) -> None:
        app = self.server.app
        app.router.add_get("/admin", self.page)
        app.router.add_get("/admin/api/stats", self.stats)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, _app: web.Application) -> None:
        self._task = asyncio.ensure_future(self._announce_loop())

    async def _stop(self, _app: web.Application) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task, what="admin announcer")

    def _rates_now(self) -> dict[str, float]:
        stats = self.server.node.stats
        now = time.monotonic()
        sample = (now, sum(stats.ops_in.values()), stats.deliveries, stats.publications)
        if self._last is not None and now - self._last[0] >= 0.5:
            dt = now - self._last[0]
            self._rates = {
                "messages_in_per_s": round((sample[1] - self._last[1]) / dt, 1),
                "deliveries_per_s": round((sample[2] - self._last[2]) / dt, 1),
                "publications_per_s": round((sample[3] - self._last[3]) / dt, 1),
            }
            self._last = sample
        elif self._last is None:
            self._last = sample
        return self._rates

    def summary(self) -> dict[str, Any]:
        server, node = self.server, self.server.node
        return {
            "node": node.name,
            "uptime": round(node.uptime, 1),
            "connections": len(server.connections),
            "subscriptions": node.hub.subscription_count,
            "channels": len(node.hub.channels()),
            "broker_healthy": node.broker.healthy,
            **self._rates_now(),
        }

    async def _announce_loop(self) -> None:
        while True:
            raise_if_cancelling()  # a cancel lost in redis-py (wirehub.tasks)
            try:
                await self.server.node.broker.announce(self.server.node.name, self.summary(),
                                                       ttl=ANNOUNCE_EVERY * 3)
            except WirehubError as exc:
                log.debug("announcing this node failed: %s", exc)
            await asyncio.sleep(ANNOUNCE_EVERY)  # a period, not waiting for an event

    def _allowed(self, request: web.Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                  self.token)

    async def stats(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return web.json_response({"code": "unauthorized",
                                      "message": "send 'Authorization: Bearer <admin token>'"},
                                     status=401)
        server, node = self.server, self.server.node
        try:
            nodes = await node.broker.nodes()
        except WirehubError:
            nodes = {}
        nodes[node.name] = self.summary()
        conns = sorted(server.connections, key=lambda c: c.connected_at)
        return web.json_response({
            "node": node.name,
            "nodes": [nodes[n] for n in sorted(nodes)],
            "connections": [{
                "client": c.client_id, "remote": c.remote, "user": c.user,
                "user_agent": c.user_agent[:80], "connected_at": round(c.connected_at, 3),
                "channels": len(c.channels), "queued_bytes": c.queued_bytes,
                "conflated": c.conflated, "dropped": c.dropped,
            } for c in conns[:500]],
            "channels": sorted(({"channel": ch, "subscribers": len(node.hub.subscribers(ch))}
                                for ch in node.hub.channels()),
                               key=lambda e: -e["subscribers"])[:500],
        })

    async def page(self, _request: web.Request) -> web.FileResponse:
        from .server import STATIC_DIR

        return web.FileResponse(STATIC_DIR / "admin.html", headers={"Cache-Control": "no-cache"})

"""A bare protocol-v1 test client on the `websockets` library (not wirehub's own client)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class RawClient:
    """Sends requests with ids; sorts what arrives into replies and pushes."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any], unit: float) -> None:
        self.ws = ws
        self.welcome = welcome
        self.client_id: str = welcome["client"]
        self.unit = unit
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._replies: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str, unit: float, **kwargs: Any) -> RawClient:
        ws = await websockets.connect(url, **kwargs)
        welcome = json.loads(await asyncio.wait_for(ws.recv(), unit))
        assert welcome["op"] == "welcome", welcome
        return cls(ws, welcome, unit)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                fut = self._replies.pop(frame.get("id"), None) if frame["op"] in (
                    "reply", "error", "pong") else None
                if fut is not None:
                    fut.set_result(frame)
                else:
                    await self.pushes.put(frame)
        except websockets.ConnectionClosed:
            pass

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a request and return its reply or error frame."""
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        await self.ws.send(json.dumps({"op": op, "id": rid, **fields}))
        return await asyncio.wait_for(fut, self.unit)

    async def ok(self, op: str, **fields: Any) -> Any:
        """Send a request and return its result; fail on an error frame."""
        frame = await self.request(op, **fields)
        assert frame["op"] == "reply", frame
        return frame["result"]

    async def push(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.pushes.get(), self.unit)

    async def messages(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` message pushes (other pushes are skipped)."""
        out: list[dict[str, Any]] = []
        while len(out) < n:
            frame = await self.push()
            if frame["op"] == "message":
                out.append(frame)
        return out

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()

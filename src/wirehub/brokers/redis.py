"""The Redis broker: many nodes share channels, history and presence.

Layout per channel ``C`` (hash-tagged so one channel's keys share a slot):

* ``wh:{C}:meta``  hash ``offset``, ``epoch``: the stream position
* ``wh:{C}:hist``  list of the last messages (bounded by count, expiring by age)
* ``wh:{C}:pres``  hash client -> presence entry; ``wh:{C}:pexp`` zset client -> expiry

Publishing runs one Lua script that bumps the offset, appends to the history
and PUBLISHes on ``wh:ch:C``, atomically: every node sees a channel's
messages in the same order with the same offsets. A node SUBSCRIBEs (one
shared pub/sub connection) only to channels with local subscribers. The epoch
is created with the channel's meta hash; if Redis loses it (restart without
persistence, or the meta expired), a new epoch tells clients so.

Presence entries carry an expiry that their node refreshes; a dead node's
clients drop out of presence once it passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..exceptions import BrokerError
from .base import Broker, History, Publication, StreamPosition

__all__ = ["RedisBroker"]

log = logging.getLogger("wirehub.brokers.redis")

_PUBLISH = """
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
redis.call('HSET', KEYS[1], 'ttl', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
local msg = 'p' .. offset .. ':' .. epoch .. ':' .. ARGV[1]
local size = tonumber(ARGV[2])
if size > 0 then
  redis.call('RPUSH', KEYS[2], msg)
  redis.call('LTRIM', KEYS[2], -size, -1)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
else
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[4], msg)
return {offset, epoch}
"""

_POSITION = """
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
redis.call('HSETNX', KEYS[1], 'offset', 0)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('HMGET', KEYS[1], 'offset', 'epoch')
"""

_HISTORY = """
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
redis.call('HSETNX', KEYS[1], 'offset', 0)
redis.call('EXPIRE', KEYS[1], ARGV[2])
local pos = redis.call('HMGET', KEYS[1], 'offset', 'epoch', 'ttl')
return {pos[1], pos[2], pos[3] or '0', redis.call('LRANGE', KEYS[2], 0, -1)}
"""

_LEASE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_body = msgspec.msgpack.Encoder()
_Body = tuple[Any, str | None, int]
_decode_body = msgspec.msgpack.Decoder(_Body).decode


def _keys(channel: str) -> tuple[str, str]:
    return f"wh:{{{channel}}}:meta", f"wh:{{{channel}}}:hist"


def _topic(channel: str) -> str:
    return f"wh:ch:{channel}"


class RedisBroker(Broker):
    """Channels, history and presence in Redis; ``redis://host:port/db``."""

    def __init__(
        self,
        url: str,
        *,
        meta_ttl: int = 86_400,
        presence_ttl: float = 30.0,
        reconnect_delay: float = 0.5,
    ) -> None:
        self.url = url
        self.meta_ttl = meta_ttl
        self.presence_ttl = presence_ttl
        self.reconnect_delay = reconnect_delay
        self._redis: aioredis.Redis = aioredis.from_url(url, decode_responses=False)
        self._publish = self._redis.register_script(_PUBLISH)
        self._position = self._redis.register_script(_POSITION)
        self._history = self._redis.register_script(_HISTORY)
        self._lease = self._redis.register_script(_LEASE)
        self._pubsub: Any = None
        self._channels: set[str] = set()
        self._reader: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._healthy = False
        self._local_presence: dict[tuple[str, str], dict[str, Any]] = {}
        #: called after the pub/sub connection came back (channels may have gaps)
        self.on_reconnected: Any = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise BrokerError("connect", f"{self.url}: {exc}") from exc
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._healthy = True
        self._reader = asyncio.ensure_future(self._read_loop())
        self._refresher = asyncio.ensure_future(self._refresh_presence_loop())

    async def close(self) -> None:
        for task in (self._reader, self._refresher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for (channel, client) in list(self._local_presence):
            with contextlib.suppress(RedisError, OSError):
                await self.remove_presence(channel, client)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    # -- streams ----------------------------------------------------------------------------
    async def publish(self, channel: str, data: Any, *, client: str | None = None,
                      history_size: int = 300, history_ttl: float = 120.0) -> Publication:
        ts = int(time.time() * 1000)
        body = _body.encode((data, client, ts))
        meta, hist = _keys(channel)
        try:
            offset, epoch = await self._publish(
                keys=[meta, hist],
                args=[body, history_size, max(1, int(history_ttl + 0.999)), _topic(channel),
                      secrets.token_hex(4), self.meta_ttl],
            )
        except (RedisError, OSError) as exc:
            raise BrokerError("publish", str(exc)) from exc
        return Publication(channel, data, int(offset), epoch.decode(), client, ts)

    async def publish_event(self, channel: str, event: dict[str, Any]) -> None:
        try:
            await self._redis.publish(_topic(channel), b"e" + _body.encode(event))
        except (RedisError, OSError) as exc:
            raise BrokerError("publish an event", str(exc)) from exc

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        try:
            await self._pubsub.subscribe(_topic(channel))
        except (RedisError, OSError) as exc:
            self._channels.discard(channel)
            raise BrokerError("subscribe", str(exc)) from exc

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        try:
            await self._pubsub.unsubscribe(_topic(channel))
        except (RedisError, OSError) as exc:
            raise BrokerError("unsubscribe", str(exc)) from exc

    async def position(self, channel: str) -> StreamPosition:
        meta, _ = _keys(channel)
        try:
            offset, epoch = await self._position(keys=[meta],
                                                 args=[secrets.token_hex(4), self.meta_ttl])
        except (RedisError, OSError) as exc:
            raise BrokerError("read the stream position", str(exc)) from exc
        return StreamPosition(int(offset), epoch.decode())

    async def history(self, channel: str, *, since: int | None = None,
                      limit: int | None = None) -> History:
        meta, hist = _keys(channel)
        try:
            offset, epoch, ttl, raw = await self._history(
                keys=[meta, hist], args=[secrets.token_hex(4), self.meta_ttl])
        except (RedisError, OSError) as exc:
            raise BrokerError("read history", str(exc)) from exc
        top, epoch_s = int(offset), epoch.decode()
        horizon = time.time() * 1000 - int(ttl) * 1000  # by age, as the namespace asks
        pubs = [p for p in (self._parse(channel, m) for m in raw) if p and p.ts >= horizon]
        if since is None:
            if limit is not None:
                pubs = pubs[-limit:] if limit > 0 else []
            return History(pubs, top, epoch_s)
        first = pubs[0].offset if pubs else top + 1
        complete = first <= since + 1 and since <= top
        pubs = [p for p in pubs if p.offset > since] if complete else []
        if limit is not None:
            pubs = pubs[:limit]
        return History(pubs, top, epoch_s, complete=complete)

    @staticmethod
    def _parse(channel: str, raw: bytes) -> Publication | None:
        try:
            offset, epoch, body = raw[1:].split(b":", 2)
            data, client, ts = _decode_body(body)
            return Publication(channel, data, int(offset), epoch.decode(), client, ts)
        except (ValueError, msgspec.DecodeError):
            log.error("unreadable message in channel %s", channel)
            return None

    # -- delivery ------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        while True:
            try:
                if not self._channels:
                    await asyncio.sleep(0.05)
                    continue
                msg = await self._pubsub.get_message(timeout=1.0)
                if msg is None or msg.get("type") != "message":
                    continue
                self._dispatch(msg["channel"].decode()[6:], msg["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("redis pub/sub lost: %s; reconnecting", exc)
                self._healthy = False
                await self._reconnect()

    def _dispatch(self, channel: str, raw: bytes) -> None:
        handler = self._handler
        if handler is None:
            return
        if raw[:1] == b"p":
            pub = self._parse(channel, raw)
            if pub is not None:
                handler.on_publication(pub)
        elif raw[:1] == b"e":
            handler.on_event(channel, msgspec.msgpack.decode(raw[1:]))

    async def _reconnect(self) -> None:
        """Reconnect pub/sub and resubscribe every channel, however long it takes."""
        while True:
            await asyncio.sleep(self.reconnect_delay)
            try:
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._redis.ping()
                if self._channels:
                    await self._pubsub.subscribe(*(_topic(c) for c in self._channels))
                await self._republish_presence()
            except (RedisError, OSError) as exc:
                log.info("redis still unreachable: %s", exc)
                continue
            self._healthy = True
            log.info("redis pub/sub back; %d channels resubscribed", len(self._channels))
            if self.on_reconnected is not None:
                self.on_reconnected(set(self._channels))
            return

    async def lease(self, name: str, holder: str, ttl: float) -> bool:
        try:
            return bool(await self._lease(keys=[f"wh:lease:{name}"],
                                          args=[holder, int(ttl * 1000)]))
        except (RedisError, OSError) as exc:
            raise BrokerError("take a lease", str(exc)) from exc

    # -- presence ---------------------------------------------------------------------------------
    async def add_presence(self, channel: str, client: str, entry: dict[str, Any]) -> None:
        self._local_presence[channel, client] = entry
        await self._write_presence(channel, client, entry)

    async def _write_presence(self, channel: str, client: str, entry: dict[str, Any]) -> None:
        pres, pexp = f"wh:{{{channel}}}:pres", f"wh:{{{channel}}}:pexp"
        expires = time.time() + self.presence_ttl
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(pres, client, msgspec.json.encode(entry))
                pipe.zadd(pexp, {client: expires})
                pipe.expire(pres, int(self.presence_ttl * 4))
                pipe.expire(pexp, int(self.presence_ttl * 4))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerError("record presence", str(exc)) from exc

    async def remove_presence(self, channel: str, client: str) -> None:
        self._local_presence.pop((channel, client), None)
        pres, pexp = f"wh:{{{channel}}}:pres", f"wh:{{{channel}}}:pexp"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(pres, client)
                pipe.zrem(pexp, client)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerError("remove presence", str(exc)) from exc

    async def presence(self, channel: str) -> dict[str, dict[str, Any]]:
        pres, pexp = f"wh:{{{channel}}}:pres", f"wh:{{{channel}}}:pexp"
        now = time.time()
        try:
            alive = await self._redis.zrangebyscore(pexp, now, "+inf")
            if not alive:
                return {}
            entries = await self._redis.hmget(pres, alive)
        except (RedisError, OSError) as exc:
            raise BrokerError("read presence", str(exc)) from exc
        return {c.decode(): msgspec.json.decode(e) for c, e in zip(alive, entries, strict=True)
                if e is not None}

    async def _republish_presence(self) -> None:
        for (channel, client), entry in list(self._local_presence.items()):
            await self._write_presence(channel, client, entry)

    async def _refresh_presence_loop(self) -> None:
        """Refresh this node's presence entries well before they expire."""
        while True:
            await asyncio.sleep(self.presence_ttl / 3)
            if not self._healthy:
                continue
            try:
                await self._republish_presence()
            except BrokerError as exc:
                log.warning("refreshing presence failed: %s", exc)

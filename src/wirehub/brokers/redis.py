"""The Redis broker: many nodes share channels, history and presence.

Layout per channel ``C`` (hash-tagged so one channel's keys share a slot):

* ``wh:{C}:meta``  hash ``offset``, ``epoch``: the stream position
* ``wh:{C}:hist``  list of the last messages (bounded by count, expiring by age)
* ``wh:{C}:pres``  hash client -> presence entry; ``wh:{C}:pexp`` zset client -> expiry

Publishing runs one Lua script that bumps the offset, appends to the history
and PUBLISHes on ``wh:ch:C``, atomically: every node sees a channel's
messages in the same order with the same offsets. A node SUBSCRIBEs (one
shared pub/sub connection, with a client of its own that never reconnects
behind our back) only to channels with local subscribers, and ``subscribe``
returns once Redis confirmed it, so that nothing published after it is
missed. The epoch is created with the channel's meta hash; if Redis loses it
(restart without persistence, or the meta expired), a new epoch tells
clients so, and history kept under the old epoch is dropped.

Liveness: a quiet pub/sub connection is PINGed every ``health_interval``
seconds and counts as lost when the answer does not come within another
``health_interval`` (a hung Redis does not close sockets); commands give up
after ``timeout`` seconds. While the connection is lost ``healthy`` is False;
the broker reconnects and resubscribes by itself, then calls
``on_reconnected(channels)`` before delivering anything new, because those
channels may have gaps.

Presence entries carry an expiry that their node refreshes; a dead node's
clients drop out of presence once it passes (and are purged when read).
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
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..exceptions import BrokerError
from ..tasks import cancel_and_wait, raise_if_cancelling
from .base import Broker, History, Publication, StreamPosition

__all__ = ["RedisBroker"]

log = logging.getLogger("wirehub.brokers.redis")

_PUBLISH = """
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('DEL', KEYS[2])
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

# A new epoch starts a new stream: history left under the lost meta is not part of it.
_POSITION = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then redis.call('DEL', KEYS[2]) end
redis.call('HSETNX', KEYS[1], 'offset', 0)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('HMGET', KEYS[1], 'offset', 'epoch')
"""

_HISTORY = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then redis.call('DEL', KEYS[2]) end
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

# Delete the lease only if this holder has it (it may have lapsed and been taken).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Purge expired entries (a dead node's clients), then list the live ones.
_PRESENCE = """
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 1000)
for _, client in ipairs(dead) do
  redis.call('HDEL', KEYS[1], client)
  redis.call('ZREM', KEYS[2], client)
end
local out = {}
for _, client in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf')) do
  local entry = redis.call('HGET', KEYS[1], client)
  if entry then
    out[#out + 1] = client
    out[#out + 1] = entry
  end
end
return out
"""

_body = msgspec.msgpack.Encoder()
_Body = tuple[Any, str | None, int]
_decode_body = msgspec.msgpack.Decoder(_Body).decode
_TOPIC_PREFIX = "wh:ch:"


def _keys(channel: str) -> tuple[str, str]:
    return f"wh:{{{channel}}}:meta", f"wh:{{{channel}}}:hist"


def _presence_keys(channel: str) -> tuple[str, str]:
    return f"wh:{{{channel}}}:pres", f"wh:{{{channel}}}:pexp"


def _topic(channel: str) -> str:
    return _TOPIC_PREFIX + channel


class RedisBroker(Broker):
    """Channels, history and presence in Redis; ``redis://host:port/db``.

    ``timeout`` bounds every command, the wait for one of the
    ``max_connections`` pooled connections, and every subscription
    (``socket_timeout`` in the URL overrides it for commands);
    ``health_interval`` is how long the pub/sub connection may stay quiet
    before it is PINGed, and how long the PING may take.
    """

    def __init__(
        self,
        url: str,
        *,
        meta_ttl: int = 86_400,
        presence_ttl: float = 30.0,
        reconnect_delay: float = 0.5,
        timeout: float = 5.0,
        health_interval: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        self.url = url
        self.meta_ttl = meta_ttl
        self.presence_ttl = presence_ttl
        self.reconnect_delay = reconnect_delay
        self.timeout = timeout
        self.health_interval = health_interval
        # Commands wait (up to ``timeout``) for one of ``max_connections`` instead of
        # failing with "Too many connections" under a burst. One retry on a broken
        # connection (a pooled socket that died with a Redis restart); none on a
        # timeout, which may mean the command did run.
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(
            aioredis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=timeout, decode_responses=False,
                socket_timeout=timeout, socket_connect_timeout=timeout,
                retry=Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.02), 1,
                            supported_errors=(RedisConnectionError,))))
        # Pub/sub has a client of its own that never reconnects by itself: a lost
        # connection must reach _read_loop, which resubscribes and reports the gap.
        self._sub_client: aioredis.Redis = aioredis.from_url(
            url, decode_responses=False, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0))
        self._publish = self._redis.register_script(_PUBLISH)
        self._position = self._redis.register_script(_POSITION)
        self._history = self._redis.register_script(_HISTORY)
        self._lease = self._redis.register_script(_LEASE)
        self._release = self._redis.register_script(_RELEASE)
        self._presence = self._redis.register_script(_PRESENCE)
        self._pubsub: Any = None
        self._channels: set[str] = set()
        self._confirm: dict[bytes, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._ping_pending = False
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
        self._pubsub = self._sub_client.pubsub()
        self._healthy = True
        self._reader = asyncio.ensure_future(self._read_loop())
        self._refresher = asyncio.ensure_future(self._refresh_presence_loop())

    async def close(self) -> None:
        for task in (self._reader, self._refresher):
            if task is not None:
                await cancel_and_wait(task, what="redis broker task")
        if self._healthy and self._local_presence:  # otherwise they expire by themselves
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(self.timeout):
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for channel, client in self._local_presence:
                            pres, pexp = _presence_keys(channel)
                            pipe.hdel(pres, client)
                            pipe.zrem(pexp, client)
                        await pipe.execute()
        self._local_presence.clear()
        self._lost(BrokerError("close"))  # a subscribe() still waiting gives up now
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        for client in (self._sub_client, self._redis):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    # -- streams ----------------------------------------------------------------------------
    async def publish(self, channel: str, data: Any, *, client: str | None = None,
                      history_size: int = 300, history_ttl: float = 120.0,
                      size: int = 0) -> Publication:
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
        """Subscribe; returns once Redis confirmed it (so no later publication is missed)."""
        if not self._healthy or self._pubsub is None:
            raise BrokerError("subscribe", "redis is unreachable; reconnecting")
        topic = _topic(channel)
        key = topic.encode()
        fut = asyncio.get_running_loop().create_future()
        self._confirm[key] = fut
        self._channels.add(channel)
        try:
            await self._pubsub.subscribe(topic)
            self._wake.set()  # the read loop reads the confirmation
            async with asyncio.timeout(self.timeout):  # not wait_for: it can eat a
                await fut  # cancellation on Python 3.11
        except (RedisError, OSError, TimeoutError) as exc:
            self._channels.discard(channel)
            raise BrokerError("subscribe", str(exc) or "redis did not confirm") from exc
        finally:
            if self._confirm.get(key) is fut:
                del self._confirm[key]

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)  # nothing more is delivered from now on
        if not self._healthy:
            return  # the reconnection subscribes only the channels still wanted
        try:
            await self._pubsub.unsubscribe(_topic(channel))
        except (RedisError, OSError) as exc:
            raise BrokerError("unsubscribe", str(exc)) from exc

    async def position(self, channel: str) -> StreamPosition:
        try:
            offset, epoch = await self._position(keys=list(_keys(channel)),
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
        pubs = [p for p in (self._parse(channel, m) for m in raw)
                if p and p.ts >= horizon and p.epoch == epoch_s]
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
            raise_if_cancelling()  # a cancel lost in redis-py (wirehub.tasks)
            try:
                if self._channels and self._pubsub.connection is not None:
                    await self._read()
                else:
                    await self._idle()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("redis pub/sub lost: %s; reconnecting", exc)
                self._lost(exc)
                await self._reconnect()
            except Exception as exc:  # our bug: log it, and keep delivering
                log.exception("redis pub/sub reader failed; reconnecting")
                self._lost(exc)
                await self._reconnect()

    async def _read(self) -> None:
        """Deliver what arrives; PING a quiet connection, and give it up if that goes unanswered."""
        msg = await self._pubsub.get_message(timeout=self.health_interval)
        if msg is None:
            if self._ping_pending:
                raise RedisTimeoutError(f"no answer to PING within {self.health_interval:g} s")
            self._ping_pending = True
            await self._pubsub.ping()
            return
        self._ping_pending = False  # anything at all proves the connection alive
        self._handle(msg)

    async def _idle(self) -> None:
        """No channel: wait for a subscription, checking every so often that Redis answers."""
        self._wake.clear()
        if self._channels and self._pubsub.connection is not None:
            return
        try:
            async with asyncio.timeout(self.health_interval):
                await self._wake.wait()
        except TimeoutError:
            await self._redis.ping()

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "message":
            channel = msg["channel"].decode()[len(_TOPIC_PREFIX):]
            if channel in self._channels:  # not after unsubscribe(), even if Redis sent it
                self._dispatch(channel, msg["data"])
        elif kind == "subscribe":
            fut = self._confirm.pop(msg["channel"], None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    def _dispatch(self, channel: str, raw: bytes) -> None:
        handler = self._handler
        if handler is None:
            return
        try:
            if raw[:1] == b"p":
                pub = self._parse(channel, raw)
                if pub is not None:
                    handler.on_publication(pub)
            elif raw[:1] == b"e":
                handler.on_event(channel, msgspec.msgpack.decode(raw[1:]))
        except Exception:  # a handler's bug must not stop delivery of everything else
            log.exception("delivering a message of channel %s failed", channel)

    def _lost(self, exc: BaseException) -> None:
        self._healthy = False
        self._ping_pending = False
        for fut in self._confirm.values():
            if not fut.done():
                fut.set_exception(RedisConnectionError(f"pub/sub connection lost: {exc}"))
        self._confirm.clear()

    async def _reconnect(self) -> None:
        """Reconnect pub/sub and resubscribe every channel, however long it takes.

        The subscriptions are confirmed before ``on_reconnected`` runs and before
        anything that arrived meanwhile is delivered, so a gap repair that reads
        history then cannot miss a publication.
        """
        while True:
            raise_if_cancelling()
            await asyncio.sleep(self.reconnect_delay)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout):
                    await self._pubsub.aclose()
            self._pubsub = self._sub_client.pubsub()
            try:
                await self._redis.ping()
                channels = set(self._channels)
                early: list[dict[str, Any]] = []
                if channels:
                    await self._pubsub.subscribe(*(_topic(c) for c in channels))
                    early = await self._await_confirmations(channels)
                stale = channels - self._channels  # unsubscribed while we reconnected
                if stale:
                    await self._pubsub.unsubscribe(*(_topic(c) for c in stale))
                await self._republish_presence()
            except (RedisError, OSError, TimeoutError, BrokerError) as exc:
                log.info("redis still unreachable: %s", exc or type(exc).__name__)
                continue
            except Exception:  # our bug: keep trying rather than stop delivering for good
                log.exception("reconnecting to redis failed")
                continue
            self._healthy = True
            log.info("redis pub/sub back; %d channels resubscribed", len(channels))
            if self.on_reconnected is not None and channels & self._channels:
                try:
                    self.on_reconnected(channels & self._channels)
                except Exception:
                    log.exception("on_reconnected failed")
            for msg in early:
                self._handle(msg)
            return

    async def _await_confirmations(self, channels: set[str]) -> list[dict[str, Any]]:
        """Read until Redis confirmed every subscription; return the messages read meanwhile."""
        waiting = {_topic(c).encode() for c in channels}
        early: list[dict[str, Any]] = []
        async with asyncio.timeout(self.timeout):
            while waiting:
                msg = await self._pubsub.get_message(timeout=self.timeout)
                if msg is None:
                    continue
                if msg.get("type") == "subscribe":
                    waiting.discard(msg["channel"])
                elif msg.get("type") == "message":
                    early.append(msg)
        return early

    async def lease(self, name: str, holder: str, ttl: float) -> bool:
        try:
            return bool(await self._lease(keys=[f"wh:lease:{name}"],
                                          args=[holder, max(1, int(ttl * 1000))]))
        except (RedisError, OSError) as exc:
            raise BrokerError("take a lease", str(exc)) from exc

    async def release(self, name: str, holder: str) -> None:
        try:
            await self._release(keys=[f"wh:lease:{name}"], args=[holder])
        except (RedisError, OSError) as exc:
            raise BrokerError("release a lease", str(exc)) from exc

    async def announce(self, node: str, info: dict[str, Any], ttl: float) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset("wh:nodes", node, msgspec.json.encode(info))
                pipe.zadd("wh:nodes:exp", {node: time.time() + ttl})
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerError("announce the node", str(exc)) from exc

    async def nodes(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        try:
            dead = await self._redis.zrangebyscore("wh:nodes:exp", "-inf", now)
            if dead:  # forget nodes that stopped announcing themselves
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zrem("wh:nodes:exp", *dead)
                    pipe.hdel("wh:nodes", *dead)
                    await pipe.execute()
            alive = await self._redis.zrangebyscore("wh:nodes:exp", now, "+inf")
            if not alive:
                return {}
            infos = await self._redis.hmget("wh:nodes", alive)
        except (RedisError, OSError) as exc:
            raise BrokerError("list nodes", str(exc)) from exc
        return {n.decode(): msgspec.json.decode(i) for n, i in zip(alive, infos, strict=True)
                if i is not None}

    # -- presence ---------------------------------------------------------------------------------
    async def add_presence(self, channel: str, client: str, entry: dict[str, Any]) -> None:
        self._local_presence[channel, client] = entry
        await self._write_presence(channel, client, entry)

    async def _write_presence(self, channel: str, client: str, entry: dict[str, Any]) -> None:
        pres, pexp = _presence_keys(channel)
        expires = time.time() + self.presence_ttl
        keep_ms = max(1000, int(self.presence_ttl * 4000))  # EXPIRE 0 would delete the key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(pres, client, msgspec.json.encode(entry))
                pipe.zadd(pexp, {client: expires})
                pipe.pexpire(pres, keep_ms)
                pipe.pexpire(pexp, keep_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerError("record presence", str(exc)) from exc

    async def remove_presence(self, channel: str, client: str) -> None:
        self._local_presence.pop((channel, client), None)
        pres, pexp = _presence_keys(channel)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(pres, client)
                pipe.zrem(pexp, client)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerError("remove presence", str(exc)) from exc

    async def presence(self, channel: str) -> dict[str, dict[str, Any]]:
        try:
            flat = await self._presence(keys=list(_presence_keys(channel)),
                                        args=[repr(time.time())])
        except (RedisError, OSError) as exc:
            raise BrokerError("read presence", str(exc)) from exc
        return {flat[i].decode(): msgspec.json.decode(flat[i + 1])
                for i in range(0, len(flat), 2)}

    async def _republish_presence(self) -> None:
        for (channel, client), entry in list(self._local_presence.items()):
            await self._write_presence(channel, client, entry)

    async def _refresh_presence_loop(self) -> None:
        """Refresh this node's presence entries well before they expire."""
        while True:
            raise_if_cancelling()
            await asyncio.sleep(self.presence_ttl / 3)
            if not self._healthy:
                continue
            try:
                await self._republish_presence()
            except BrokerError as exc:
                log.warning("refreshing presence failed: %s", exc)

"""The HTTP API for other services: publish, channels, presence, history.

Every route needs ``Authorization: Bearer <api_key>`` (``--api-key``); without
a key configured the API is off (404). Errors are JSON objects with the same
``code``/``message`` as protocol errors. ``GET /api/openapi.json`` describes it.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from ..core.codec import JSON
from ..core.codes import ErrorCode
from ..core.envelope import CHANNEL_PATTERN, Channel
from ..exceptions import BrokerError, RequestError

if TYPE_CHECKING:
    from .server import WirehubServer

__all__ = ["add_api_routes"]


class _PublishBody(msgspec.Struct, forbid_unknown_fields=True):
    channel: Channel
    data: Any = None


_decode_publish = msgspec.json.Decoder(_PublishBody).decode

_STATUS = {
    ErrorCode.BAD_REQUEST: 400, ErrorCode.UNAUTHORIZED: 401, ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404, ErrorCode.TOO_LARGE: 413, ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNKNOWN_OP: 404, ErrorCode.INTERNAL: 500,
}


def _error(code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message},
                             status=_STATUS.get(ErrorCode(code), 400))


def _json(value: Any) -> web.Response:
    return web.Response(body=JSON.encode(value), content_type="application/json")


class _Api:
    def __init__(self, server: WirehubServer) -> None:
        self.server = server
        self.node = server.node
        self.key = (server.config.api_key or "").encode()

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/api/") or request.path == "/api/openapi.json":
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 self.key):
            return web.json_response(
                {"code": "unauthorized", "message": "send 'Authorization: Bearer <api key>'"},
                status=401, headers={"WWW-Authenticate": "Bearer"})
        try:
            return await handler(request)
        except RequestError as exc:
            return _error(exc.code, exc.message)
        except BrokerError:
            return _error("internal", "the broker is unavailable; try again")

    def _channel(self, request: web.Request) -> str:
        channel = request.match_info["channel"]
        try:
            return msgspec.convert(channel, Channel)
        except msgspec.ValidationError:
            raise RequestError("bad_request", f"channel must match {CHANNEL_PATTERN}") from None

    async def publish(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > self.server.config.max_message_size:
            return _error("too_large", "body over max_message_size")
        try:
            body = _decode_publish(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _error("bad_request", str(exc))
        pub = await self.node.publish(body.channel, body.data)
        return _json({"channel": pub.channel, "offset": pub.offset, "epoch": pub.epoch})

    async def channels(self, _request: web.Request) -> web.Response:
        hub = self.node.hub
        return _json({"node": self.node.name,
                      "channels": [{"channel": c, "subscribers": len(hub.subscribers(c))}
                                   for c in sorted(hub.channels())]})

    async def presence(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if not self.node.namespaces.for_channel(channel).presence:
            return _error("not_found", "presence is not enabled for this namespace")
        entries = await self.node.broker.presence(channel)
        return _json({"channel": channel, "clients": list(entries.values())})

    async def history(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        opts = self.node.namespaces.for_channel(channel)
        try:
            limit = int(request.query.get("limit", opts.history_size))
            since = request.query.get("since")
            since_offset = int(since) if since is not None else None
        except ValueError:
            return _error("bad_request", "limit and since must be integers")
        if limit < 0:
            return _error("bad_request", "limit must be >= 0")
        hist = await self.node.broker.history(channel, since=since_offset,
                                              limit=min(limit, opts.history_size))
        return _json({"channel": channel, "offset": hist.offset, "epoch": hist.epoch,
                      "complete": hist.complete,
                      "messages": [self.node._push(p) for p in hist.publications]})

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)


def add_api_routes(server: WirehubServer) -> None:
    """Mount /api/* on the server's aiohttp app when an API key is configured."""
    if not server.config.api_key:
        return
    api = _Api(server)
    app = server.app
    app.middlewares.append(api.guard)
    app.router.add_post("/api/publish", api.publish)
    app.router.add_get("/api/channels", api.channels)
    app.router.add_get("/api/presence/{channel}", api.presence)
    app.router.add_get("/api/history/{channel}", api.history)
    app.router.add_get("/api/openapi.json", api.openapi)


_ERROR = {"$ref": "#/components/schemas/Error"}
_CHANNEL_PARAM = {"name": "channel", "in": "path", "required": True,
                  "schema": {"type": "string", "pattern": CHANNEL_PATTERN}}


def _responses(ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "content": {
        "application/json": {"schema": ok}}}}
    for code in (401, *codes):
        out[str(code)] = {"description": "error", "content": {
            "application/json": {"schema": _ERROR}}}
    return out


_MESSAGE = {"type": "object", "required": ["op", "channel", "data", "offset", "epoch"],
            "properties": {"op": {"const": "message"}, "channel": {"type": "string"},
                           "data": {}, "offset": {"type": "integer"},
                           "epoch": {"type": "string"}, "from": {"type": ["string", "null"]},
                           "ts": {"type": "integer"}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "wirehub HTTP API", "version": "1",
             "description": "Publish to channels and read channels, presence and history "
             "from other services. Every route needs 'Authorization: Bearer <api key>'."},
    "components": {
        "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": {"type": "object", "required": ["code", "message"],
                              "properties": {"code": {"type": "string", "enum": [
                                  e.value for e in ErrorCode]},
                                  "message": {"type": "string"}}}},
    },
    "security": [{"apiKey": []}],
    "paths": {
        "/api/publish": {"post": {
            "summary": "Publish data to a channel (from null: server side)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["channel"], "additionalProperties": False,
                "properties": {"channel": {"type": "string", "pattern": CHANNEL_PATTERN},
                               "data": {}}}}}},
            "responses": _responses({"type": "object", "required": ["channel", "offset",
                                                                    "epoch"],
                                     "properties": {"channel": {"type": "string"},
                                                    "offset": {"type": "integer"},
                                                    "epoch": {"type": "string"}}},
                                    400, 413, 500)}},
        "/api/channels": {"get": {
            "summary": "Channels with subscribers on this node",
            "responses": _responses({"type": "object", "properties": {
                "node": {"type": "string"}, "channels": {"type": "array", "items": {
                    "type": "object", "properties": {"channel": {"type": "string"},
                                                     "subscribers": {"type": "integer"}}}}}})}},
        "/api/presence/{channel}": {"get": {
            "summary": "Who is in a channel (namespaces with presence)",
            "parameters": [_CHANNEL_PARAM],
            "responses": _responses({"type": "object", "properties": {
                "channel": {"type": "string"}, "clients": {"type": "array", "items": {
                    "type": "object", "properties": {"client": {"type": "string"},
                                                     "user": {"type": ["string", "null"]},
                                                     "info": {}}}}}}, 400, 404, 500)}},
        "/api/history/{channel}": {"get": {
            "summary": "A channel's retained messages, oldest first",
            "parameters": [_CHANNEL_PARAM,
                           {"name": "limit", "in": "query", "schema": {"type": "integer",
                                                                       "minimum": 0}},
                           {"name": "since", "in": "query", "schema": {"type": "integer",
                                                                       "minimum": 0}}],
            "responses": _responses({"type": "object", "properties": {
                "channel": {"type": "string"}, "offset": {"type": "integer"},
                "epoch": {"type": "string"}, "complete": {"type": "boolean"},
                "messages": {"type": "array", "items": _MESSAGE}}}, 400, 500)}},
    },
}

json.dumps(OPENAPI)  # fail at import if the document is not plain JSON

"""Chat rooms: channels ``chat:<room>`` with presence, history and typing.

Written with the public App API only.

* ``send {type: "chat.nick", data: {"nick": "ada"}}`` sets this connection's
  nickname (shown in presence and on its messages).
* ``publish {channel: "chat:lobby", data: {"text": "hi"}}`` posts a message; the
  server checks the text (non-empty, at most 2000 characters) and stamps the
  nickname, so what subscribers get is ``{"text", "nick", "user"}``.
* ``history {channel: "chat:lobby", limit: 50}`` after subscribing shows the
  last 50 messages.
* ``send {type: "chat.typing", data: {"room": "lobby"}}`` tells the room's
  subscribers ``{"op":"event","type":"typing",...}``; it is not stored.
"""

from __future__ import annotations

import re
from typing import Any

from ..app import App
from ..core.codes import ErrorCode
from ..exceptions import RequestError

__all__ = ["MAX_TEXT", "chat_app"]

MAX_TEXT = 2000
MAX_NICK = 32
_ROOM = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")


def _nick_of(conn: Any) -> str:
    return conn.info.get("nick") or conn.user or f"guest-{conn.client_id[:4]}"


def _check_nick(data: Any) -> str:
    nick = data.get("nick") if isinstance(data, dict) else None
    if not isinstance(nick, str):
        raise RequestError(ErrorCode.BAD_REQUEST, "chat.nick needs data.nick, a string")
    nick = nick.strip()
    if not 1 <= len(nick) <= MAX_NICK or not nick.isprintable():
        raise RequestError(
            ErrorCode.BAD_REQUEST,
            f"data.nick must be 1 to {MAX_NICK} printable characters",
        )
    return nick


def chat_app(*, history_size: int = 300, history_ttl: float = 3600.0) -> App:
    app = App("chat")
    app.namespace("chat", presence=True, history_size=history_size, history_ttl=history_ttl)

    @app.on_publish("chat")
    def check_message(conn: Any, channel: str, data: Any) -> dict[str, Any]:
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise RequestError(ErrorCode.BAD_REQUEST, "a chat message needs data.text, a string")
        if not text.strip():
            raise RequestError(ErrorCode.BAD_REQUEST, "data.text must not be empty")
        if len(text) > MAX_TEXT:
            raise RequestError(
                ErrorCode.BAD_REQUEST,
                f"data.text is {len(text)} characters; at most {MAX_TEXT} are allowed",
            )
        return {"text": text, "nick": _nick_of(conn), "user": conn.user}

    @app.on("chat.nick")
    async def set_nick(conn: Any, data: Any) -> dict[str, Any]:
        conn.info = {**conn.info, "nick": _check_nick(data)}
        for channel in sorted(conn.channels):
            if channel.startswith("chat:"):  # refresh presence entries with the new nick
                await app.node.refresh_presence(conn, channel)
        return {"nick": conn.info["nick"]}

    @app.on("chat.typing")
    async def typing(conn: Any, data: Any) -> dict[str, Any]:
        room = data.get("room") if isinstance(data, dict) else None
        if not isinstance(room, str) or not _ROOM.match(room):
            raise RequestError(ErrorCode.BAD_REQUEST, "chat.typing needs data.room, a room name")
        channel = f"chat:{room}"
        if channel not in conn.channels:
            raise RequestError(ErrorCode.FORBIDDEN, "subscribe to the room before typing in it")
        await app.broadcast(channel, "typing", {"client": conn.client_id, "nick": _nick_of(conn)})
        return {}

    return app

"""Protocol v1 envelopes: what a client sends and what the server answers.

Every frame is one object with an ``op`` field. Requests are a tagged union on
``op`` decoded and validated by msgspec, so a wrong field type is reported with
the path of the field (``$.channel``). See docs/protocol.md.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

__all__ = [
    "CHANNEL_PATTERN",
    "PROTOCOL",
    "AuthWelcome",
    "Channel",
    "Connect",
    "Error",
    "HistoryRequest",
    "MessagePush",
    "Ping",
    "Pong",
    "Presence",
    "PresenceStats",
    "Publish",
    "Refresh",
    "RefreshRequest",
    "Reply",
    "Request",
    "RequestId",
    "Send",
    "Since",
    "Subscribe",
    "Unsubscribe",
    "Welcome",
    "namespace_of",
]

PROTOCOL = "wirehub.v1"
CHANNEL_PATTERN = r"^[A-Za-z0-9_.:@-]{1,200}$"

Channel = Annotated[str, msgspec.Meta(pattern=CHANNEL_PATTERN)]
TypeName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:@-]{1,100}$")]
# Ids are echoed back: keep them small (JSON-safe integers, short strings).
RequestId = (
    Annotated[int, msgspec.Meta(ge=-(2**53) + 1, le=2**53 - 1)]
    | Annotated[str, msgspec.Meta(max_length=128)]
)


def namespace_of(channel: str) -> str:
    """The namespace of a channel: the part before the first ``:`` ('' if none)."""
    head, sep, _ = channel.partition(":")
    return head if sep else ""


class _Request(msgspec.Struct, tag_field="op", kw_only=True, frozen=True, omit_defaults=True):
    id: RequestId | None = None


class Since(msgspec.Struct, frozen=True):
    """A stream position the client saw last: recover what came after it."""

    offset: Annotated[int, msgspec.Meta(ge=0)]
    epoch: Annotated[str, msgspec.Meta(max_length=64)]


class Subscribe(_Request, tag="subscribe", frozen=True):
    channel: Channel
    #: recover the messages published after this position (docs/protocol.md)
    since: Since | None = None
    #: deliver at most this many messages per second, always the newest
    max_rate: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] | None = None


class Unsubscribe(_Request, tag="unsubscribe", frozen=True):
    channel: Channel


class Publish(_Request, tag="publish", frozen=True):
    channel: Channel
    data: Any = None


class Send(_Request, tag="send", frozen=True):
    type: TypeName
    data: Any = None


class Ping(_Request, tag="ping", frozen=True):
    pass


class Connect(_Request, tag="connect", frozen=True):
    """First frame of a browser client on a server with authentication."""

    token: Annotated[str, msgspec.Meta(max_length=8192)]


class Refresh(_Request, tag="refresh", frozen=True):
    """A new token for the same user, before the current one expires."""

    token: Annotated[str, msgspec.Meta(max_length=8192)]


class HistoryRequest(_Request, tag="history", frozen=True):
    channel: Channel
    limit: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None
    since: Since | None = None


class Presence(_Request, tag="presence", frozen=True):
    channel: Channel


class PresenceStats(_Request, tag="presence_stats", frozen=True):
    channel: Channel


Request = (
    Subscribe | Unsubscribe | Publish | Send | Ping | HistoryRequest | Presence | PresenceStats
    | Connect | Refresh
)

#: every op a client may send; anything else is ``unknown_op``.
CLIENT_OPS = frozenset(
    {"subscribe", "unsubscribe", "publish", "send", "ping", "history", "presence",
     "presence_stats", "connect", "refresh"}
)


# -- server to client -------------------------------------------------------

class _Push(msgspec.Struct, tag_field="op", kw_only=True):
    pass


class Welcome(_Push, tag="welcome"):
    client: str
    node: str
    protocol: str = PROTOCOL
    ping_interval: float = 20


class AuthWelcome(Welcome, tag="welcome"):
    """The welcome of a server with authentication.

    ``auth`` is "authenticated" (the handshake carried a valid token, ``user``
    is its ``sub``) or "required" (send a ``connect`` frame with a token).
    """

    auth: str = "required"
    user: str | None = None


class RefreshRequest(_Push, tag="refresh"):
    """Server -> client: the token expires in ``expires_in`` seconds; send a new one."""

    expires_in: float


class Reply(_Push, tag="reply"):
    id: RequestId | None
    result: Any = None


class Error(_Push, tag="error", omit_defaults=True, kw_only=True):
    id: RequestId | None = None
    code: str
    message: str


class Pong(_Push, tag="pong"):
    id: RequestId | None = None


class MessagePush(_Push, tag="message"):
    channel: str
    data: Any
    offset: int
    epoch: str
    from_: str | None = msgspec.field(name="from", default=None)
    ts: int = 0

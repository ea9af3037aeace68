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
    "Channel",
    "Error",
    "MessagePush",
    "Ping",
    "Pong",
    "Publish",
    "Reply",
    "Request",
    "RequestId",
    "Send",
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


class _Request(msgspec.Struct, tag_field="op", kw_only=True, frozen=True):
    id: RequestId | None = None


class Subscribe(_Request, tag="subscribe", frozen=True):
    channel: Channel


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


Request = Subscribe | Unsubscribe | Publish | Send | Ping

#: every op a client may send; anything else is ``unknown_op``.
CLIENT_OPS = frozenset({"subscribe", "unsubscribe", "publish", "send", "ping"})


# -- server to client -------------------------------------------------------

class _Push(msgspec.Struct, tag_field="op", kw_only=True):
    pass


class Welcome(_Push, tag="welcome"):
    client: str
    node: str
    protocol: str = PROTOCOL
    ping_interval: float = 20


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

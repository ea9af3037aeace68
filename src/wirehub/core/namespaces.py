"""Per-namespace channel options: history, presence, snapshots, slow consumers.

A channel's namespace is the part of its name before the first ``:``
(``chat:lobby`` -> ``chat``). Apps declare options for their namespaces with
:meth:`wirehub.App.namespace`; channels in undeclared namespaces use the
defaults below.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "DEFAULT_OPTIONS",
    "NamespaceOptions",
    "Namespaces",
    "Permission",
    "SlowConsumerPolicy",
]


class Permission(enum.StrEnum):
    """Who may do an action on a namespace's channels."""

    ANYONE = "anyone"  #: every client, authenticated or not
    AUTHENTICATED = "authenticated"  #: clients with a valid token
    OWNER = "owner"  #: only the user named in the channel: ``user:<sub>`` or ``user:<sub>:...``
    GRANTED = "granted"  #: only clients whose token's ``channels`` claim matches
    SERVER = "server"  #: no client; server code only


class SlowConsumerPolicy(enum.StrEnum):
    """What happens when a client's outbound queue is full."""

    DISCONNECT = "disconnect"  #: close with 4000; the client reconnects and recovers
    CONFLATE = "conflate"  #: keep only the newest message per channel until it drains
    DROP_OLDEST = "drop_oldest"  #: drop the oldest queued messages of the channel


@dataclass(frozen=True, slots=True)
class NamespaceOptions:
    #: messages kept per channel for ``history`` and recovery (0: none)
    history_size: int = 300
    #: seconds a message stays in history
    history_ttl: float = 120.0
    #: keep a presence list and send join/leave pushes to subscribers
    presence: bool = False
    #: a new subscriber gets the channel's latest message at once
    snapshot: bool = False
    #: what to do when a subscriber's outbound queue is full
    slow_consumer: SlowConsumerPolicy = SlowConsumerPolicy.DISCONNECT
    #: who may subscribe, publish, read history, read presence (wirehub.auth.Permission)
    subscribe: str = "anyone"
    publish: str = "anyone"
    history: str = "anyone"
    presence_read: str = "anyone"

    def __post_init__(self) -> None:
        from ..exceptions import ConfigError

        if self.history_size < 0:
            raise ConfigError("history_size", self.history_size, "an integer >= 0")
        if self.history_ttl <= 0:
            raise ConfigError("history_ttl", self.history_ttl, "a number of seconds > 0")
        try:
            object.__setattr__(self, "slow_consumer", SlowConsumerPolicy(self.slow_consumer))
        except ValueError:
            allowed = ", ".join(p.value for p in SlowConsumerPolicy)
            raise ConfigError("slow_consumer", self.slow_consumer, f"one of {allowed}") from None
        for action in ("subscribe", "publish", "history", "presence_read"):
            value = getattr(self, action)
            try:
                object.__setattr__(self, action, Permission(value))
            except ValueError:
                allowed = ", ".join(p.value for p in Permission)
                raise ConfigError(action, value, f"one of {allowed}") from None


DEFAULT_OPTIONS = NamespaceOptions()


class Namespaces:
    """Namespace name -> options, with a default for the rest."""

    __slots__ = ("_by_name", "default")

    def __init__(self, default: NamespaceOptions = DEFAULT_OPTIONS) -> None:
        self.default = default
        self._by_name: dict[str, NamespaceOptions] = {}

    def set(self, name: str, **options: Any) -> NamespaceOptions:
        base = self._by_name.get(name, self.default)
        opts = self._by_name[name] = replace(base, **options)
        return opts

    def update(self, other: Namespaces) -> None:
        self._by_name.update(other._by_name)

    def for_channel(self, channel: str) -> NamespaceOptions:
        head, sep, _ = channel.partition(":")
        if not sep:
            return self.default
        return self._by_name.get(head, self.default)

    def get(self, name: str) -> NamespaceOptions:
        return self._by_name.get(name, self.default)

    def names(self) -> list[str]:
        return list(self._by_name)

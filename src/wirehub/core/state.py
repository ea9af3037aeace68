"""The connection state machine shared by server sessions and the client.

States are an enum and transitions a table (as in h11's ``_state.py``); an
event that the table does not allow raises :class:`InvalidStateTransition`
naming both.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from ..exceptions import InvalidStateTransition

__all__ = ["TRANSITIONS", "ConnectionState", "StateEvent", "StateMachine"]


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class StateEvent(enum.Enum):
    HANDSHAKE_DONE = "handshake_done"  #: upgrade accepted, welcome received/sent
    CLOSE_STARTED = "close_started"  #: a close frame was sent or received
    CONNECTION_LOST = "connection_lost"  #: TCP gone, handshake failed, or close finished
    RECONNECT = "reconnect"  #: client only: start the next attempt


S, E = ConnectionState, StateEvent

TRANSITIONS: dict[tuple[ConnectionState, StateEvent], ConnectionState] = {
    (S.CONNECTING, E.HANDSHAKE_DONE): S.OPEN,
    (S.CONNECTING, E.CLOSE_STARTED): S.CLOSING,
    (S.CONNECTING, E.CONNECTION_LOST): S.CLOSED,
    (S.OPEN, E.CLOSE_STARTED): S.CLOSING,
    (S.OPEN, E.CONNECTION_LOST): S.CLOSED,
    (S.CLOSING, E.CLOSE_STARTED): S.CLOSING,
    (S.CLOSING, E.CONNECTION_LOST): S.CLOSED,
    (S.CLOSED, E.RECONNECT): S.CONNECTING,
    (S.CLOSED, E.CONNECTION_LOST): S.CLOSED,
}

Listener = Callable[[ConnectionState, ConnectionState], None]


class StateMachine:
    """Holds one connection's state and tells listeners about every change."""

    __slots__ = ("_listeners", "state")

    def __init__(self, state: ConnectionState = ConnectionState.CONNECTING) -> None:
        self.state = state
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(old, new)`` after every change of state."""
        self._listeners.append(listener)

    def can(self, event: StateEvent) -> bool:
        return (self.state, event) in TRANSITIONS

    def fire(self, event: StateEvent) -> ConnectionState:
        """Apply ``event``; raise :class:`InvalidStateTransition` if not allowed."""
        try:
            new = TRANSITIONS[self.state, event]
        except KeyError:
            raise InvalidStateTransition(self.state, event) from None
        old, self.state = self.state, new
        if new is not old:
            for listener in list(self._listeners):
                listener(old, new)
        return new

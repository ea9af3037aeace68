"""The connection state machine: the full transition table, listeners, illegal events."""

from __future__ import annotations

import itertools

import pytest

from wirehub.core.state import TRANSITIONS, ConnectionState, StateEvent, StateMachine
from wirehub.exceptions import InvalidStateTransition, WirehubError

S, E = ConnectionState, StateEvent

EXPECTED = {
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
ALL_PAIRS = list(itertools.product(ConnectionState, StateEvent))


def _pair_id(pair: tuple[ConnectionState, StateEvent]) -> str:
    return f"{pair[0].name}-{pair[1].name}"


def test_table_is_exactly_the_documented_one() -> None:
    """The transition table allows exactly the documented (state, event) pairs."""
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
def test_every_state_event_pair(pair: tuple[ConnectionState, StateEvent]) -> None:
    """Each allowed event moves to its target; each other one raises naming state and event."""
    state, event = pair
    machine = StateMachine(state)
    if pair in EXPECTED:
        assert machine.can(event)
        assert machine.fire(event) is EXPECTED[pair]
        assert machine.state is EXPECTED[pair]
    else:
        assert not machine.can(event)
        with pytest.raises(InvalidStateTransition) as info:
            machine.fire(event)
        assert info.value.state is state
        assert info.value.event is event
        assert state.name in str(info.value)
        assert event.name in str(info.value)
        assert machine.state is state  # an illegal event changes nothing


def test_illegal_transition_is_a_wirehub_error() -> None:
    """InvalidStateTransition belongs to the one exception tree."""
    with pytest.raises(WirehubError, match=r"HANDSHAKE_DONE.*OPEN"):
        StateMachine(S.OPEN).fire(E.HANDSHAKE_DONE)


def test_starts_connecting_by_default() -> None:
    """A new machine starts in CONNECTING."""
    assert StateMachine().state is S.CONNECTING


def test_listeners_see_every_change_in_order() -> None:
    """Listeners get (old, new) for each real change of a whole connection lifetime."""
    machine = StateMachine()
    seen: list[tuple[ConnectionState, ConnectionState]] = []
    machine.add_listener(lambda old, new: seen.append((old, new)))
    for event in (E.HANDSHAKE_DONE, E.CLOSE_STARTED, E.CONNECTION_LOST, E.RECONNECT):
        machine.fire(event)
    assert seen == [(S.CONNECTING, S.OPEN), (S.OPEN, S.CLOSING), (S.CLOSING, S.CLOSED),
                    (S.CLOSED, S.CONNECTING)]


def test_self_transitions_do_not_notify() -> None:
    """A transition that stays in the same state (CLOSING on a second close) is silent."""
    machine = StateMachine(S.CLOSING)
    seen: list[object] = []
    machine.add_listener(lambda old, new: seen.append((old, new)))
    assert machine.fire(E.CLOSE_STARTED) is S.CLOSING
    assert seen == []
    machine.fire(E.CONNECTION_LOST)
    machine.fire(E.CONNECTION_LOST)
    assert seen == [(S.CLOSING, S.CLOSED)]


def test_illegal_event_does_not_notify() -> None:
    """Listeners hear nothing about a refused event."""
    machine = StateMachine(S.CLOSED)
    seen: list[object] = []
    machine.add_listener(lambda old, new: seen.append((old, new)))
    with pytest.raises(InvalidStateTransition):
        machine.fire(E.CLOSE_STARTED)
    assert seen == []

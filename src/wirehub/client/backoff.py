"""Reconnection delays: exponential backoff with full jitter, as a pure generator.

Each delay is drawn uniformly from ``[0, min(cap, base * factor ** attempt)]``
("full jitter", AWS Architecture Blog, *Exponential Backoff And Jitter*), so a
fleet of clients cut off together by a restarting server does not come back in
one wave. RFC 6455 §7.2.3 asks for exactly this kind of randomised delay after
an abnormal closure.

The generator does no I/O and never sleeps: the reconnect loop in
:mod:`wirehub.client.client` asks it how long to wait. It tells the generator
that the connection it just lost had been good (a ``welcome`` arrived) by
sending ``True``; the sequence then starts again from ``base``::

    delays = backoff(0.5, 30.0)
    next(delays)        # first retry: somewhere in [0, 0.5]
    delays.send(False)  # the retry failed too: somewhere in [0, 1.0]
    delays.send(True)   # we were connected in between: back to [0, 0.5]
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator

__all__ = ["backoff"]


def backoff(
    base: float = 0.5,
    cap: float = 30.0,
    *,
    factor: float = 2.0,
    rand: Callable[[], float] = random.random,
) -> Generator[float, bool | None, None]:
    """Yield delays in seconds before each reconnection attempt, forever.

    ``rand`` returns a float in ``[0, 1)``; pass a fixed function in tests.
    Sending ``True`` resets the growth (the previous connection stayed up);
    sending ``False`` or ``None`` (what :func:`next` sends) keeps growing.
    """
    if base <= 0 or cap <= 0:
        raise ValueError(f"backoff base and cap must be positive, got {base} and {cap}")
    if factor < 1:
        raise ValueError(f"backoff factor must be at least 1, got {factor}")
    ceiling = min(base, cap)
    while True:
        reset = yield rand() * ceiling
        # Grow the ceiling, not an exponent: no float overflow however long it runs.
        ceiling = min(base, cap) if reset else min(cap, ceiling * factor)

"""What a tick source is: the interface between market data and the feed loop.

A source is pull-based and knows nothing about time: the feed loop
(:mod:`.feed`) decides how many ticks are due and asks for them, stamping them
with the wall clock. That keeps sources deterministic and testable without an
event loop, and lets one pacing loop drive a simulator, a file replay or an
adapter to a real market-data API alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from .tick import Tick

__all__ = ["TickSource"]


@runtime_checkable
class TickSource(Protocol):
    """Produces ticks on demand, ``count`` at a time."""

    @property
    def exhausted(self) -> bool:
        """True once the source will never produce another tick."""
        ...

    def opens(self) -> Mapping[str, float]:
        """Every symbol of the source, in order, with its session opening price."""
        ...

    def next_batch(self, count: int, now_ms: int) -> list[Tick]:
        """The next ``count`` ticks (fewer only when exhausted), stamped ``now_ms``."""
        ...

"""The pure backoff generator: bounds, cap, growth, reset and full jitter."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirehub.client.backoff import backoff

bases = st.floats(min_value=1e-3, max_value=10.0)
caps = st.floats(min_value=1e-3, max_value=120.0)
factors = st.floats(min_value=1.0, max_value=4.0)
#: no per-example deadline: a loaded CI machine must not turn timing into failures
relaxed = settings(deadline=None, max_examples=60)


def _ceilings(base: float, cap: float, factor: float, n: int) -> list[float]:
    """The delays drawn with a jitter of exactly 1: the ceiling of each attempt."""
    gen = backoff(base, cap, factor=factor, rand=lambda: 1.0)
    return list(itertools.islice(gen, n))


@relaxed
@given(bases, caps, factors, st.randoms(use_true_random=False))
def test_every_delay_is_within_zero_and_cap(base, cap, factor, rnd):
    """Whatever the settings and the random draws, each delay lies in [0, cap]."""
    gen = backoff(base, cap, factor=factor, rand=rnd.random)
    for delay in itertools.islice(gen, 200):
        assert 0.0 <= delay <= cap


@relaxed
@given(bases, caps)
def test_first_delay_is_at_most_base(base, cap):
    """The first retry waits at most min(base, cap)."""
    assert next(backoff(base, cap, rand=lambda: 1.0)) == pytest.approx(min(base, cap))


def test_growth_is_exponential_until_the_cap():
    """Ceilings double from base (0.5, 1, 2, 4 ...) and then stay at the cap."""
    assert _ceilings(0.5, 5.0, 2.0, 7) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


@relaxed
@given(bases, caps, factors)
def test_ceilings_never_decrease_and_reach_the_cap(base, cap, factor):
    """Without a reset the ceiling is monotonic and, with factor > 1, ends at the cap."""
    seq = _ceilings(base, cap, factor, 400)
    assert all(a <= b for a, b in itertools.pairwise(seq))
    if factor >= 1.1:
        assert seq[-1] == pytest.approx(cap)


def test_runs_forever_without_overflow():
    """A million attempts later the ceiling is still the cap, not inf or an error."""
    gen = backoff(0.5, 30.0, rand=lambda: 1.0)
    for delay in itertools.islice(gen, 1_000_000):
        last = delay
    assert last == 30.0


def test_sending_true_resets_to_base():
    """After a connection that stayed up (send True), the sequence starts again at base."""
    gen = backoff(0.5, 30.0, rand=lambda: 1.0)
    assert [next(gen) for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert gen.send(True) == 0.5
    assert gen.send(False) == 1.0
    assert gen.send(None) == 2.0


@relaxed
@given(st.integers(min_value=0, max_value=50), st.randoms(use_true_random=False))
def test_reset_after_any_number_of_failures(failures, rnd):
    """However many failures came before, a reset brings the next delay under base."""
    gen = backoff(0.25, 10.0, rand=rnd.random)
    next(gen)
    for _ in range(failures):
        gen.send(False)
    assert 0.0 <= gen.send(True) <= 0.25


def test_full_jitter_spreads_delays_over_the_whole_range():
    """Full jitter: delays are uniform in [0, ceiling], not bunched near the ceiling."""
    rnd = random.Random(1234)
    gen = backoff(1.0, 1.0, rand=rnd.random)  # a constant ceiling of 1 s
    delays = list(itertools.islice(gen, 2000))
    assert min(delays) >= 0.0 and max(delays) <= 1.0
    assert min(delays) < 0.05 and max(delays) > 0.95
    assert sum(delays) / len(delays) == pytest.approx(0.5, abs=0.05)
    assert len(set(delays)) > 1900  # two clients almost never pick the same delay


def test_uses_the_given_random_source():
    """The jitter comes from ``rand`` only: a fixed source gives a fixed sequence."""
    draws = iter([0.0, 0.5, 0.25])
    gen = backoff(1.0, 8.0, rand=lambda: next(draws))
    assert [next(gen) for _ in range(3)] == [0.0, 1.0, 1.0]


@pytest.mark.parametrize(("base", "cap", "factor"), [(0, 1, 2), (1, 0, 2), (-1, 1, 2), (1, 1, 0.5)])
def test_rejects_meaningless_settings(base, cap, factor):
    """A non-positive base or cap, or a shrinking factor, is refused at the first draw."""
    with pytest.raises(ValueError):
        next(backoff(base, cap, factor=factor))

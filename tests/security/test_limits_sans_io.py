"""wirehub.limits without sockets: the token bucket on a fake clock, the JSON depth scan."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirehub.limits import TokenBucket, json_depth_exceeds


def test_bucket_starts_full_and_refills_at_rate() -> None:
    """A bucket gives its burst at once, then `rate` tokens per second, never above burst."""
    bucket = TokenBucket(rate=2, burst=4, now=100.0)
    assert [bucket.take(100.0) for _ in range(5)] == [True] * 4 + [False]
    assert bucket.take(100.4) is False  # 0.8 tokens
    assert bucket.take(100.5) is True  # 1.0 token
    assert [bucket.take(1000.0) for _ in range(5)] == [True] * 4 + [False]  # capped at burst


def test_bucket_refuses_without_taking() -> None:
    """Taking more than the bucket holds fails and leaves the tokens for smaller takes."""
    bucket = TokenBucket(rate=1000, burst=2000, now=0.0)
    assert bucket.take(0.0, 1500)
    assert not bucket.take(0.0, 1500)
    assert bucket.take(0.0, 500)
    assert not bucket.take(0.0, 1)


def test_bucket_amount_over_burst_never_passes() -> None:
    """An amount larger than the burst is refused however long one waits."""
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert not bucket.take(1e9, 21)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 5)])
def test_bucket_needs_positive_rate_and_burst(rate: float, burst: float) -> None:
    """rate and burst must be > 0."""
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, 0.0)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab:,'),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.text(alphabet='[]{}"\\a', max_size=4), kids, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, limit=st.integers(0, 12), ascii_only=st.booleans())
def test_json_depth_scan_matches_real_depth(value: Any, limit: int, ascii_only: bool) -> None:
    """The bracket scan agrees with the parsed depth, brackets and quotes in strings included."""
    payload = json.dumps(value, ensure_ascii=ascii_only)
    assert json_depth_exceeds(payload, limit) == (depth(value) > limit)
    assert json_depth_exceeds(payload.encode(), limit) == (depth(value) > limit)


def test_json_depth_scan_of_hostile_text() -> None:
    """Unbalanced or huge bracket runs are answered without recursion."""
    assert json_depth_exceeds("[" * 1_000_000, 32)
    assert not json_depth_exceeds("]" * 1_000_000 + "[" * 32, 32)
    assert not json_depth_exceeds('"' + "[" * 1000 + '"', 32)
    assert json_depth_exceeds('"\\""' + "[" * 40, 32)  # an escaped quote does not end a string

"""Rate limits: token buckets, sans-I/O (the caller passes the clock).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per
second; taking more than it holds fails without taking anything.
"""

from __future__ import annotations

__all__ = ["TokenBucket", "json_depth_exceeds"]


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be > 0")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Take ``amount`` tokens if the bucket has them; say whether it did."""
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= amount:
            self.tokens = tokens - amount
            return True
        self.tokens = tokens
        return False


_OPENERS = (ord("["), ord("{"))


def json_depth_exceeds(payload: bytes | str, limit: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than ``limit``.

    Counting brackets is a C-speed upper bound, so most payloads are cleared
    without a scan; the scan skips brackets inside strings.
    """
    raw = payload.encode() if isinstance(payload, str) else payload
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False

"""The generic cell rate algorithm (GCRA): a token bucket stored as one number.

A bucket that allows `burst` requests at once and refills one every `interval` seconds keeps only
its theoretical arrival time `tat`: the moment the bucket would be full again. A request at `now`
is allowed when `max(tat, now) + interval - burst * interval <= now`; allowing it moves `tat` on by
one interval. One float per bucket makes the check a single row read and write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Decision", "decide", "available"]

# Float slack, so that a request arriving exactly when a token refills is not refused by rounding.
_EPS = 1e-9


@dataclass(frozen=True)
class Decision:
    allowed: bool
    tat: float  # the bucket's new tat when allowed, its unchanged tat when not
    retry_after: float  # seconds until a request would be allowed; 0 when allowed


def decide(tat: float | None, now: float, *, burst: int, interval: float) -> Decision:
    """Whether one request at `now` fits a bucket with state `tat` (None: a never-used bucket)."""
    base = now if tat is None else max(tat, now)
    new_tat = base + interval
    allow_at = new_tat - burst * interval
    if allow_at > now + _EPS:
        return Decision(False, now if tat is None else tat, allow_at - now)
    return Decision(True, new_tat, 0.0)


def available(tat: float | None, now: float, *, burst: int, interval: float) -> tuple[int, float]:
    """(requests allowed right now, seconds until the next one refills; 0 when full)."""
    if tat is None or tat <= now:
        return burst, 0.0
    used = (tat - now) / interval
    tokens = max(0, math.floor(burst - used + _EPS))
    next_in = (tat - now) - math.floor((tat - now) / interval + _EPS) * interval
    return tokens, next_in if next_in > _EPS else interval

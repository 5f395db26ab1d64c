"""Latency as a log-spaced histogram: cumulative counts a reader can subtract to get any interval's p50/p95.

Buckets are 10 % wide from 0.1 ms up, so a percentile read from them is within 5 % of the true value; unlike
a sample, two readings subtract exactly, which is what a per-interval metric needs.

    >>> from collections import Counter
    >>> h = Counter(bucket(s) for s in (0.010, 0.011, 0.012, 0.500))
    >>> round(percentile(h, 0.5) * 1000)
    11
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["bucket", "percentile", "subtract"]

_FLOOR_S = 1e-4
_STEP = 1.1
_LOG_STEP = math.log(_STEP)


def bucket(seconds: float) -> int:
    """The bucket of a latency: 0 for 0.1 ms or less, then one per 10 %."""
    if seconds <= _FLOOR_S:
        return 0
    return 1 + int(math.log(seconds / _FLOOR_S) / _LOG_STEP)


def _value(index: int) -> float:
    """A bucket's representative latency: its geometric middle."""
    if index <= 0:
        return _FLOOR_S
    return float(_FLOOR_S * _STEP ** (index - 0.5))


def percentile(hist: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) in seconds, nearest rank; None when the histogram is empty."""
    total = sum(n for n in hist.values() if n > 0)
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(hist):
        n = hist[index]
        if n <= 0:
            continue
        seen += n
        if seen >= rank:
            return _value(index)
    return _value(max(hist))


def subtract(after: Mapping[int, int], before: Mapping[int, int]) -> dict[int, int]:
    """Counts added between two cumulative readings."""
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0) > 0}

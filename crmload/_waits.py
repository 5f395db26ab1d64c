"""Wall time during which at least one worker was held back: the union of waiting intervals.

Four workers that each wait 10 s at the same moment held the run back 10 s, not 40 s. The limiter hands out
start slots in time order (GCRA reservations under one lock), so intervals arrive ordered by start and end;
for such a stream the union grows by exactly the part of each new interval past the end of the last one.
An interval reported slightly out of order (another thread got the lock first) is at worst undercounted by
that overlap, never double-counted.

Example:
    >>> u = WaitUnion()
    >>> u.add(0.0, 10.0); u.add(0.0, 10.0); u.add(5.0, 12.0); u.add(20.0, 21.0)
    >>> u.total
    13.0
"""

from __future__ import annotations

import math
import threading

__all__ = ["WaitUnion"]


class WaitUnion:
    """Thread-safe running length of the union of ``[start, end)`` intervals added in (about) time order."""

    __slots__ = ("_covered_until", "_lock", "_total")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._covered_until = -math.inf
        self._total = 0.0

    def add(self, start: float, end: float) -> None:
        """Add the interval a worker spent waiting."""
        with self._lock:
            begin = max(start, self._covered_until)
            if end > begin:
                self._total += end - begin
                self._covered_until = end

    @property
    def total(self) -> float:
        """Seconds covered by at least one interval."""
        with self._lock:
            return self._total

"""The token bucket under both budgets of ``crmload.throttle`` (private: import it from there).

``TokenBucket`` hands out evenly spaced time slots at a rate that may change at run time. ``_check_rate`` is
the one positive-number check that the bucket and ``RateLimit`` share.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from crmload.errors import ConfigError

__all__ = ["Clock", "Sleep", "TokenBucket"]

Clock = Callable[[], float]
#: Waits shorter than this are float residue (1e-16 s), not worth a sleep or a count.
_EPSILON_S = 1e-9
Sleep = Callable[[float], Any]


class TokenBucket:
    """A thread-safe token bucket that hands out evenly spaced time slots.

    Written here rather than taken from pyrate-limiter because we need three things its static rates do not
    give: a rate that changes at run time (``auto``), injectable clock and sleep (exact schedules in tests),
    and a pause-all (``pause_until``) for a server's Retry-After.

    It is GCRA / virtual scheduling: ``_tat`` is the theoretical arrival time of the next call. ``reserve()``
    books the next slot under the lock and returns it; the caller sleeps *outside* the lock, so N threads get
    N distinct slots 1/rate apart instead of queueing on a lock. Up to ``burst`` slots may start at once after
    an idle period; in any window of W seconds at most ``burst + W * rate`` slots are handed out.

    Example:
        >>> t = [0.0]
        >>> bucket = TokenBucket(4.0, 1, clock=lambda: t[0], sleep=lambda s: None)
        >>> [bucket.reserve()[1] for _ in range(3)]
        [0.0, 0.25, 0.5]
    """

    def __init__(
        self, rate: float, burst: int = 1, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        _check_rate(rate, "rate")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigError(f"burst must be an int >= 1, got {burst!r}")
        self._rate = float(rate)
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat = -math.inf
        self._not_before = -math.inf

    @property
    def rate(self) -> float:
        """Slots per second now."""
        return self._rate

    @property
    def burst(self) -> int:
        """Slots that may start at once after an idle period."""
        return self._burst

    def set_rate(self, rate: float) -> None:
        """Change the rate from the next reservation on; slots already booked keep their time."""
        _check_rate(rate, "rate")
        with self._lock:
            self._rate = float(rate)

    def pause_until(self, instant: float) -> None:
        """Hand out no slot before ``instant`` (a clock reading); pauses only ever extend."""
        with self._lock:
            self._not_before = max(self._not_before, instant)

    def reserve(self) -> tuple[float, float]:
        """Book the next slot. Returns ``(now, slot)``; the caller may proceed at ``slot`` (>= now)."""
        with self._lock:
            now = self._clock()
            interval = 1.0 / self._rate
            slot = max(now, self._tat - (self._burst - 1) * interval, self._not_before)
            if slot - now < _EPSILON_S:
                slot = now  # float residue of the burst arithmetic, not a real wait
            self._tat = max(slot, self._tat) + interval
        return now, slot

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited (0.0 when it was free)."""
        now, slot = self.reserve()
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0


def _check_rate(rate: float, name: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ConfigError(f"{name} must be a positive number, got {rate!r}")

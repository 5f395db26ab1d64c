"""The two budgets: a call-rate limiter and an always-on new-connection guard.

- ``CallLimiter`` holds calls per second under a ``RateLimit``: a fixed number, unlimited, or ``auto``
  (start at the port budget, rise while calls succeed and latency holds, cut back on busy answers or rising
  latency, pause every worker until a Retry-After has passed).
- ``ConnectGuard`` (in ``crmload._guard``, re-exported here) holds new sockets per second under the host's
  ``PortBudget``, so even when keep-alive breaks the client slows down instead of exhausting ephemeral ports.

Both are built on ``TokenBucket`` (in ``crmload._bucket``, re-exported here). Clock and sleep are injected:
tests check exact schedules without sleeping.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from crmload._bucket import Clock, Sleep, TokenBucket, _check_rate
from crmload._guard import ConnectGuard
from crmload._waits import WaitUnion
from crmload.budget import DEFAULT_PORT_BUDGET, PortBudget
from crmload.budgets import Budget, BudgetKey, BudgetStore, LocalStore
from crmload.errors import ConfigError

__all__ = ["DEFAULT_RATE_LIMIT", "CallLimiter", "ConnectGuard", "RateLimit", "TokenBucket"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """Calls per second the client may make: a number, unlimited (``per_second=None``), or ``auto``.

    Args:
        per_second: the fixed rate; None means unlimited, or with ``auto`` "start at the port budget".
        burst: calls that may start at once after an idle period.
        auto: adapt the rate, like TCP's congestion control. Start at ``per_second`` (or the port
            budget). Slow start: grow by ``auto_increase`` (a fraction) after every ``auto_window``
            successful calls in which the limiter made some call wait. Strain (a busy answer, or the latency
            EWMA above both ``auto_latency_factor`` x its lowest value and that value +
            ``auto_latency_slack_s``) cuts the rate to ``auto_decrease`` x the rate actually achieved over
            the last second, at most once per ``auto_cooldown_s``, and sets a ceiling at 0.9 x that achieved
            rate. Below the ceiling growth stays multiplicative; above it, only 2 % of the ceiling per
            cooldown. Kept within ``auto_min``..``auto_max``.
        pause_max_s: the longest Retry-After pause honoured.

    Example:
        >>> RateLimit.parse("16").per_second
        16.0
        >>> RateLimit.parse("auto").auto
        True
    """

    per_second: float | None = DEFAULT_PORT_BUDGET.per_second
    burst: int = 1
    auto: bool = False
    auto_max: float | None = None
    auto_min: float = 1.0
    auto_window: int = 20
    auto_increase: float = 0.5
    auto_decrease: float = 0.5
    auto_latency_factor: float = 2.0
    auto_latency_slack_s: float = 0.025
    auto_cooldown_s: float = 1.0
    pause_max_s: float = 300.0

    def __post_init__(self) -> None:
        if self.per_second is not None:
            _check_rate(self.per_second, "RateLimit.per_second")
        if self.auto_max is not None:
            _check_rate(self.auto_max, "RateLimit.auto_max")
        _check_rate(self.auto_min, "RateLimit.auto_min")
        _check_rate(self.auto_latency_factor, "RateLimit.auto_latency_factor")
        if not 0 <= self.auto_latency_slack_s < 60:
            raise ConfigError(
                f"RateLimit.auto_latency_slack_s must be in [0, 60), got {self.auto_latency_slack_s!r}"
            )
        _check_rate(self.pause_max_s, "RateLimit.pause_max_s")
        for name in ("burst", "auto_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"RateLimit.{name} must be an int >= 1, got {value!r}")
        if not 0 < self.auto_increase <= 10:
            raise ConfigError(f"RateLimit.auto_increase must be in (0, 10], got {self.auto_increase!r}")
        if not 0 < self.auto_decrease < 1:
            raise ConfigError(f"RateLimit.auto_decrease must be in (0, 1), got {self.auto_decrease!r}")
        if not 0 <= self.auto_cooldown_s < math.inf:
            raise ConfigError(f"RateLimit.auto_cooldown_s must be >= 0, got {self.auto_cooldown_s!r}")
        if self.auto_max is not None and self.auto_max < self.auto_min:
            raise ConfigError("RateLimit.auto_max must be >= auto_min")

    @property
    def is_unlimited(self) -> bool:
        """True when no call rate applies (Retry-After pauses still do)."""
        return self.per_second is None and not self.auto

    @classmethod
    def unlimited(cls) -> RateLimit:
        """No call-rate limit (the connection guard still applies)."""
        return cls(per_second=None)

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse a CLI value: "16", "16.5", "500/s", "auto", "auto:200" (capped), "unlimited" or "none"."""
        if not isinstance(text, str):
            raise ConfigError(f"rate must be text like '16', 'auto', 'unlimited', not {type(text).__name__}")
        value = text.strip().lower()
        if value in ("unlimited", "none"):
            return cls(per_second=None)
        if value == "auto" or value.startswith("auto:"):
            cap = value.partition(":")[2]
            return cls(per_second=None, auto=True, auto_max=_parse_number(cap, text) if cap else None)
        return cls(per_second=_parse_number(value.removesuffix("/s"), text))

    def describe(self) -> str:
        """Short human form for summaries: "16.6/s", "auto", "auto (max 200/s)", "unlimited"."""
        if self.is_unlimited:
            return "unlimited"
        if self.auto:
            start = "" if self.per_second is None else f"start {self.per_second:.4g}/s"
            cap = "" if self.auto_max is None else f"max {self.auto_max:.4g}/s"
            extra = ", ".join(p for p in (start, cap) if p)
            return f"auto ({extra})" if extra else "auto"
        return f"{self.per_second:.4g}/s"


def _parse_number(value: str, original: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(
            f"rate must be a number of calls per second, 'auto' or 'unlimited', got {original!r}"
        ) from None
    _check_rate(number, "rate")
    return number


#: The product's promise: calls per second at the 2009 port budget, safe even with no connection reuse.
DEFAULT_RATE_LIMIT = RateLimit()


class _PerThreadCount:
    """A counter each thread increments without a lock (it owns its cell); ``total()`` sums the cells."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._cells: list[list[int]] = []
        self._lock = threading.Lock()

    def incr(self) -> None:
        cell: list[int] | None = getattr(self._local, "cell", None)
        if cell is None:
            cell = [0]
            self._local.cell = cell
            with self._lock:
                self._cells.append(cell)
        cell[0] += 1

    def total(self) -> int:
        with self._lock:
            return sum(c[0] for c in self._cells)


class CallLimiter:
    """Holds calls per second under a ``RateLimit``; shared by every worker thread of one client.

    Call ``acquire()`` before each call, then ``on_success(latency_s)`` or ``on_busy(retry_after_s)``.
    A Retry-After pauses every worker, in every mode, until it has passed.

    The GCRA state lives in a ``Budget`` that ``store`` opens for ``key`` (``crmload.budgets``): by default a
    ``TokenBucket`` in this process; with ``RedisStore`` one rate and one pause shared by every process that
    uses the same key.

    Example:
        >>> t = [0.0]
        >>> lim = CallLimiter(RateLimit(per_second=16), clock=lambda: t[0], sleep=lambda s: None)
        >>> [lim.acquire() for _ in range(3)]
        [0.0, 0.0625, 0.125]
    """

    def __init__(
        self,
        rate: RateLimit | None = None,
        budget: PortBudget | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        *,
        store: BudgetStore | None = None,
        key: BudgetKey | None = None,
    ) -> None:
        self._rate = rate = rate if rate is not None else DEFAULT_RATE_LIMIT
        self._store = store = store if store is not None else LocalStore()
        budget = budget if budget is not None else DEFAULT_PORT_BUDGET
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._calls = _PerThreadCount()
        self._paused_until = -math.inf
        start: float | None = None
        if not rate.is_unlimited:
            start = rate.per_second if rate.per_second is not None else budget.per_second
            if rate.auto:
                start = min(max(start, rate.auto_min), rate.auto_max or math.inf)
        # None only for an unlimited local budget: acquire() then reads the pause alone, without a lock.
        self._bucket: Budget | None = store.open(
            key if key is not None else BudgetKey(""), rate=start, burst=rate.burst, clock=clock, sleep=sleep
        )
        # A shared budget may sleep inside reserve() (to re-check a pause another process started).
        self._budget_waits = bool(getattr(self._bucket, "waits_in_reserve", False))
        self._peak_rate = self.current_rate
        self._counts = dict.fromkeys(
            ("waits", "pauses", "busy", "rate_increases", "rate_decreases"),
            0,
        )
        self._wait_s = 0.0  # summed over workers: 4 workers waiting 1 s together add 4 s
        self._held = WaitUnion()  # wall time with at least one worker waiting: that case adds 1 s
        self._pause_s = 0.0
        # auto state: latency EWMA, its lowest value (the baseline), successes in this window, last decrease,
        # and whether any call had to wait for the limiter since the last change
        self._limited = False
        self._ewma: float | None = None
        self._baseline: float | None = None
        self._window = 0
        self._last_decrease = -math.inf
        # Like TCP: grow multiplicatively until the first sign of strain ("slow start"), then only additively,
        # at most once a cooldown, below the ceiling that strain revealed ("congestion avoidance").
        self._ceiling = math.inf
        self._last_increase = -math.inf
        self._recent: collections.deque[float] = collections.deque()

    @property
    def rate(self) -> RateLimit:
        """The policy this limiter enforces."""
        return self._rate

    @property
    def current_rate(self) -> float | None:
        """Calls per second allowed now; None when unlimited."""
        return None if self._bucket is None or self._rate.is_unlimited else self._bucket.rate

    @property
    def store(self) -> BudgetStore:
        """Where this limiter's state lives (``LocalStore`` unless a shared store was given)."""
        return self._store

    def close(self) -> None:
        """Leave a shared budget (so the others stop counting this process). Idempotent; local: nothing."""
        close = getattr(self._bucket, "close", None)
        if close is not None:
            close()

    def acquire(self) -> float:
        """Wait until the next call may start; returns the seconds waited."""
        self._calls.incr()
        bucket = self._bucket
        if bucket is None:
            # Unlimited: no lock, no reservation; only a Retry-After pause makes this wait.
            now = self._clock()
            wait = self._paused_until - now
            if wait <= 0:
                return 0.0
            self._held.add(now, now + wait)
            self._sleep(wait)
        else:
            now, slot = bucket.reserve()
            wait = slot - now
            if wait <= 0:
                return 0.0
            self._held.add(now, slot)
            if not self._budget_waits:
                self._sleep(wait)
        with self._lock:
            self._counts["waits"] += 1
            self._wait_s += wait
            self._limited = True
        return wait

    def paused_for(self) -> float:
        """Seconds left of the Retry-After pause this limiter has seen (0 when none)."""
        return max(0.0, self._paused_until - self._clock())

    def on_success(self, latency_s: float) -> None:
        """Record a successful call; in ``auto`` mode this may raise or lower the rate."""
        if not self._rate.auto:
            return
        rate = self._rate
        with self._lock:
            self._note_success()
            ewma = latency_s if self._ewma is None else self._ewma + 0.2 * (latency_s - self._ewma)
            self._ewma = ewma
            if self._baseline is None or ewma < self._baseline:
                self._baseline = ewma
            self._window += 1
            if self._window < rate.auto_window:
                return
            self._window = 0
            # Strain is latency both well above its best (factor) and above it by a real margin (slack):
            # on a fast LAN server a 2 ms -> 5 ms wobble is noise, not a server asking for mercy.
            baseline = self._baseline
            if ewma > rate.auto_latency_factor * baseline and ewma - baseline > rate.auto_latency_slack_s:
                self._decrease(self._clock(), "latency")
            elif self._limited:
                # Grow only while the limiter is what holds calls back; otherwise the number would climb
                # without meaning and take many halvings to come back down when the server strains.
                self._increase(self._clock())

    def on_busy(self, retry_after_s: float | None = None, *, adapt: bool = True) -> None:
        """Record a busy answer: pause every worker for ``retry_after_s`` if given; ``auto`` cuts back
        (unless ``adapt`` is False: another controller, such as the server budget, owns the response)."""
        with self._lock:
            now = self._clock()
            self._counts["busy"] += 1
            if retry_after_s is not None and retry_after_s > 0:
                until = now + min(retry_after_s, self._rate.pause_max_s)
                if until > self._paused_until:
                    self._pause_s += until - max(self._paused_until, now)
                    self._paused_until = until
                    self._counts["pauses"] += 1
                    if self._bucket is not None:
                        self._bucket.pause_until(until)
                    log.info("server busy: pausing all calls for %.3g s", until - now)
            if self._rate.auto and adapt:
                self._decrease(now, "busy")

    def _note_success(self) -> None:
        """Remember when calls succeeded, to know the rate actually achieved over the last second."""
        now = self._clock()
        recent = self._recent
        recent.append(now)
        while recent and recent[0] <= now - 1.0:
            recent.popleft()

    def _achieved(self) -> float | None:
        """Successful calls in the last second, or None when too few to say (fewer than a window)."""
        recent = self._recent
        if len(recent) < self._rate.auto_window:
            return None
        return float(len(recent))

    def _increase(self, now: float) -> None:
        assert self._bucket is not None  # auto always has a bucket
        old = self._bucket.rate
        if old < self._ceiling:
            new = min(old * (1 + self._rate.auto_increase), self._ceiling)
        elif now - self._last_increase >= self._rate.auto_cooldown_s:
            # Above the ceiling strain revealed, creep: a few percent of it per cooldown.
            new = old + max(1.0, 0.02 * self._ceiling)
        else:
            return
        new = min(new, self._rate.auto_max or math.inf)
        self._limited = False
        if new > old:
            self._last_increase = now
            self._bucket.set_rate(new)
            self._counts["rate_increases"] += 1
            self._peak_rate = max(self._peak_rate or 0.0, new)
            log.debug("auto rate up: %.4g -> %.4g calls/s", old, new)

    def _decrease(self, now: float, reason: str) -> None:
        assert self._bucket is not None
        # One cut per cooldown: eight workers hitting the same busy spell must not halve the rate eight times.
        if now - self._last_decrease < self._rate.auto_cooldown_s:
            return
        self._last_decrease = now
        self._window = 0
        old = self._bucket.rate
        # Cut from what the server really took, not from a limit it never saw: in slow start the bucket's
        # rate can run well ahead of the calls actually completed.
        achieved = self._achieved()
        base = old if achieved is None else min(old, achieved)
        self._ceiling = max(self._rate.auto_min, 0.9 * base)
        new = max(base * self._rate.auto_decrease, self._rate.auto_min)
        if new < old:
            self._bucket.set_rate(new)
            self._counts["rate_decreases"] += 1
            log.info("auto rate down (%s): %.4g -> %.4g calls/s", reason, old, new)

    def stats(self) -> dict[str, Any]:
        """Counters for the run summary: calls, waits, wait_s, pauses, pause_s, busy, rates."""
        with self._lock:
            return {
                "mode": "unlimited" if self._rate.is_unlimited else ("auto" if self._rate.auto else "fixed"),
                "calls": self._calls.total(),
                **self._counts,
                "wait_s": self._wait_s,
                "wait_wall_s": self._held.total,
                "pause_s": self._pause_s,
                "rate_changes": self._counts["rate_increases"] + self._counts["rate_decreases"],
                "current_rate": self.current_rate,
                "peak_rate": self._peak_rate,
                "budget_store": self._store.describe(),
                **(shared() if (shared := getattr(self._bucket, "shared_stats", None)) else {}),
            }

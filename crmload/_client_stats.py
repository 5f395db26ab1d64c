"""Client-side counters for ``CrmClient.stats()``: calls by operation, errors by type, latency percentiles."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

__all__ = ["CallStats", "LatencyReservoir"]


class LatencyReservoir:
    """A bounded uniform sample of latencies (Vitter's algorithm R), so p50/p95 cost O(size) memory forever.

    Not thread-safe by itself; ``CallStats`` holds the lock.
    """

    def __init__(self, size: int = 2048, rng: random.Random | None = None) -> None:
        self._size = size
        self._seen = 0
        self._sample: list[float] = []
        # A private Random, seeded, so stats never disturb (or depend on) the global generator.
        self._rng = rng or random.Random(0)

    def add(self, value: float) -> None:
        """Offer one latency to the sample."""
        self._seen += 1
        if len(self._sample) < self._size:
            self._sample.append(value)
            return
        slot = self._rng.randrange(self._seen)
        if slot < self._size:
            self._sample[slot] = value

    def percentile(self, q: float) -> float | None:
        """Return the q-quantile (0..1) of the sample, nearest rank; None when empty."""
        if not self._sample:
            return None
        ordered = sorted(self._sample)
        index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
        return ordered[index]


class CallStats:
    """Thread-safe call, error and latency counters of one client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._attempts = 0
        self._errors: Counter[str] = Counter()
        self._confirmed_duplicates = 0
        self._latency = LatencyReservoir()

    def call(self, op: str) -> None:
        """Count one operation started (retries are not extra calls)."""
        with self._lock:
            self._calls[op] += 1

    def attempt(self, latency_s: float | None) -> None:
        """Count one request sent; ``latency_s`` is None when no answer came back."""
        with self._lock:
            self._attempts += 1
            if latency_s is not None:
                self._latency.add(latency_s)

    def error(self, exc: BaseException) -> None:
        """Count one operation that raised, by error type."""
        with self._lock:
            self._errors[type(exc).__name__] += 1

    def confirmed_duplicate(self) -> None:
        """Count a keyed create whose lost first attempt was confirmed by a Retrieve."""
        with self._lock:
            self._confirmed_duplicates += 1

    def snapshot(self) -> dict[str, Any]:
        """Return the counters and latency percentiles (seconds) as a dict."""
        with self._lock:
            return {
                "calls": sum(self._calls.values()),
                "calls_by_op": dict(self._calls),
                "attempts": self._attempts,
                "errors": sum(self._errors.values()),
                "errors_by_type": dict(self._errors),
                "keyed_creates_confirmed": self._confirmed_duplicates,
                "latency_p50_s": self._latency.percentile(0.50),
                "latency_p95_s": self._latency.percentile(0.95),
            }

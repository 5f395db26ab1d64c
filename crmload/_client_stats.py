"""Client-side counters for ``CrmClient.stats()``: calls by operation, errors by type, latency percentiles."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from crmload import _latency_hist

__all__ = ["CallStats", "CallTrace", "LatencyReservoir"]


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

    @property
    def sample(self) -> list[float]:
        """A copy of the current sample."""
        return list(self._sample)

    def percentile(self, q: float) -> float | None:
        """Return the q-quantile (0..1) of the sample, nearest rank; None when empty."""
        if not self._sample:
            return None
        ordered = sorted(self._sample)
        index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
        return ordered[index]


@dataclass(frozen=True, slots=True)
class CallTrace:
    """One thread's running totals: requests sent, server time of the answered ones, busy and lost answers.

    Two readings around a call, subtracted, tell an adaptive caller (the loader's batch sizer) how that call
    went on the wire, retries included, without timing it from outside.
    """

    attempts: int = 0
    answered_s: float = 0.0
    busy: int = 0
    lost: int = 0

    def __sub__(self, other: CallTrace) -> CallTrace:
        return CallTrace(
            self.attempts - other.attempts,
            self.answered_s - other.answered_s,
            self.busy - other.busy,
            self.lost - other.lost,
        )


class _Cell:
    """One thread's counters; only that thread writes them, so the hot path takes no lock."""

    __slots__ = ("answered_s", "attempts", "busy", "calls", "confirmed", "errors", "hist", "latency", "lost")

    def __init__(self, seed: int) -> None:
        self.calls: Counter[str] = Counter()
        self.attempts = 0
        self.answered_s = 0.0
        self.busy = 0
        self.lost = 0
        self.errors: Counter[str] = Counter()
        self.confirmed = 0
        self.latency = LatencyReservoir(size=1024, rng=random.Random(seed))
        #: Cumulative, so interval percentiles come from two readings (``--metrics``).
        self.hist: Counter[int] = Counter()


class CallStats:
    """Call, error and latency counters of one client, shared by its worker threads.

    Each thread counts into a cell of its own (no lock per call: with 8 workers on 2 cores a shared lock cost
    ~70 µs CPU a call in contention, measured by ``benchmarks/threads_bench.py``); ``snapshot()`` adds the
    cells up. Copies of a cell's counters are taken in single C-level operations, under the GIL.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the list of cells only
        self._cells: list[_Cell] = []
        self._local = threading.local()

    def _cell(self) -> _Cell:
        try:
            cell: _Cell = self._local.cell
        except AttributeError:
            with self._lock:
                cell = _Cell(seed=len(self._cells))
                self._cells.append(cell)
            self._local.cell = cell
        return cell

    def call(self, op: str) -> None:
        """Count one operation started (retries are not extra calls)."""
        self._cell().calls[op] += 1

    def attempt(self, latency_s: float | None) -> None:
        """Count one request sent; ``latency_s`` is None when no answer came back."""
        cell = self._cell()
        cell.attempts += 1
        if latency_s is None:
            cell.lost += 1
        else:
            cell.answered_s += latency_s
            cell.latency.add(latency_s)
            cell.hist[_latency_hist.bucket(latency_s)] += 1

    def busy(self) -> None:
        """Count one busy or throttling answer (the call is retried after it)."""
        self._cell().busy += 1

    def trace(self) -> CallTrace:
        """This thread's running totals (see ``CallTrace``)."""
        cell = self._cell()
        return CallTrace(cell.attempts, cell.answered_s, cell.busy, cell.lost)

    def error(self, exc: BaseException) -> None:
        """Count one operation that raised, by error type."""
        self._cell().errors[type(exc).__name__] += 1

    def confirmed_duplicate(self) -> None:
        """Count a keyed create whose lost first attempt was confirmed by a Retrieve."""
        self._cell().confirmed += 1

    def snapshot(self) -> dict[str, Any]:
        """Return the counters and latency percentiles (seconds) as a dict."""
        with self._lock:
            cells = list(self._cells)
        calls: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        merged = LatencyReservoir(size=sum(len(c.latency.sample) for c in cells) or 1)
        hist: Counter[int] = Counter()
        attempts = confirmed = busy = 0
        for cell in cells:
            calls.update(dict(cell.calls))
            hist.update(dict(cell.hist))
            busy += cell.busy
            errors.update(dict(cell.errors))
            attempts += cell.attempts
            confirmed += cell.confirmed
            for value in cell.latency.sample:
                merged.add(value)
        return {
            "calls": sum(calls.values()),
            "calls_by_op": dict(calls),
            "attempts": attempts,
            "errors": sum(errors.values()),
            "errors_by_type": dict(errors),
            "keyed_creates_confirmed": confirmed,
            "latency_p50_s": merged.percentile(0.50),
            "latency_p95_s": merged.percentile(0.95),
            "latency_histogram": dict(hist),
            "busy_answers": busy,
        }

"""Limiter overhead: microseconds per ``acquire()`` when no wait is due, by limiter kind and thread count.

The limiters must cost nothing next to an HTTP call (hundreds of microseconds even on loopback). This measures
the bookkeeping alone: rates are set so high that no acquire ever sleeps. Results go to
``benchmarks/results/limiter.json``; nothing here asserts a time.

Run: ``python -m benchmarks.limiter_bench`` (about 10 s).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crmload.budget import PortBudget
from crmload.throttle import CallLimiter, ConnectGuard, RateLimit, TokenBucket

RESULTS = Path(__file__).resolve().parent / "results"
ACQUIRES = 200_000
REPEATS = 5
HUGE = 1e12  # calls/s: never a wait, so only bookkeeping is timed


def _never_sleep(seconds: float) -> None:
    raise AssertionError(f"benchmark limiter tried to sleep {seconds}")


def make_limiters() -> dict[str, Callable[[], Callable[[], float]]]:
    """Factories of fresh acquire callables, one per limiter kind."""
    huge_budget = PortBudget(ports=65535, time_wait_s=1e-9)
    return {
        "call_limiter_unlimited": lambda: CallLimiter(RateLimit.unlimited(), sleep=_never_sleep).acquire,
        "call_limiter_fixed": lambda: CallLimiter(RateLimit(per_second=HUGE), sleep=_never_sleep).acquire,
        "call_limiter_auto": lambda: (
            CallLimiter(RateLimit(per_second=HUGE, auto=True), sleep=_never_sleep).acquire
        ),
        "connect_guard": lambda: ConnectGuard(huge_budget, sleep=_never_sleep).acquire,
        "token_bucket_acquire": lambda: TokenBucket(HUGE, 1, sleep=_never_sleep).acquire,
    }


def time_acquires(acquire: Callable[[], float], threads: int, total: int) -> float:
    """Wall seconds for ``total`` acquires split over ``threads`` threads started together."""
    per_thread = total // threads
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            acquire()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    return time.perf_counter() - start


def measure() -> list[dict[str, Any]]:
    """Median microseconds per acquire for every limiter kind at 1, 2 and 8 threads."""
    rows = []
    baseline = min(time_acquires(lambda: 0.0, 1, ACQUIRES) for _ in range(REPEATS))
    for name, factory in make_limiters().items():
        for threads in (1, 2, 8):
            samples = [time_acquires(factory(), threads, ACQUIRES) for _ in range(REPEATS)]
            per_call_us = [s / ACQUIRES * 1e6 for s in samples]
            rows.append(
                {
                    "limiter": name,
                    "threads": threads,
                    "acquires": ACQUIRES,
                    "us_per_acquire_median": round(statistics.median(per_call_us), 3),
                    "us_per_acquire_min": round(min(per_call_us), 3),
                    "us_loop_overhead": round(baseline / ACQUIRES * 1e6, 3),
                }
            )
            print(f"{name:26s} threads={threads}  {rows[-1]['us_per_acquire_median']:.3f} us/acquire")
    return rows


def main() -> int:
    """Measure and write ``benchmarks/results/limiter.json``."""
    rows = measure()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "limiter.json"
    doc = {
        "benchmark": "limiter overhead per acquire (no waits due)",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "results": rows,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

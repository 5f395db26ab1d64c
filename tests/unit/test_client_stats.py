"""Per-thread call counters add up exactly in the snapshot."""

from __future__ import annotations

import threading

from crmload._client_stats import CallStats
from crmload.errors import RecordNotFound


def test_counts_from_many_threads_add_up_exactly() -> None:
    stats = CallStats()

    def work(n: int) -> None:
        for i in range(n):
            stats.call("Create")
            stats.attempt(0.001 * (i % 10 + 1))
        stats.error(RecordNotFound("gone"))

    threads = [threading.Thread(target=work, args=(500,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = stats.snapshot()
    assert snap["calls"] == snap["calls_by_op"]["Create"] == 4000
    assert snap["attempts"] == 4000
    assert snap["errors_by_type"] == {"RecordNotFound": 8}
    assert snap["latency_p50_s"] is not None
    assert 0.001 <= snap["latency_p50_s"] <= snap["latency_p95_s"] <= 0.010


def test_empty_snapshot() -> None:
    snap = CallStats().snapshot()
    assert (snap["calls"], snap["attempts"], snap["latency_p50_s"]) == (0, 0, None)

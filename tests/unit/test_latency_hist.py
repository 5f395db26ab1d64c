"""The latency histogram behind per-interval p50/p95: within its 10 % buckets, and exact to subtract."""

from __future__ import annotations

from collections import Counter

from crmload._latency_hist import bucket, percentile, subtract


def test_percentiles_fall_within_a_bucket_of_the_truth() -> None:
    values = [0.001 * i for i in range(1, 1001)]  # 1 ms .. 1 s
    hist = Counter(bucket(v) for v in values)
    p50, p95 = percentile(hist, 0.5), percentile(hist, 0.95)
    assert p50 is not None
    assert p95 is not None
    assert abs(p50 - 0.500) / 0.500 < 0.06
    assert abs(p95 - 0.950) / 0.950 < 0.06
    assert percentile({}, 0.5) is None
    assert percentile({bucket(0.00001): 3}, 0.5) == 1e-4  # everything under 0.1 ms is one bucket


def test_two_cumulative_readings_subtract_to_the_interval() -> None:
    before = Counter(bucket(v) for v in (0.010,) * 50)
    after = before + Counter(bucket(v) for v in (0.200,) * 10)
    interval = subtract(after, before)
    assert sum(interval.values()) == 10
    p50 = percentile(interval, 0.5)
    assert p50 is not None
    assert abs(p50 - 0.2) / 0.2 < 0.06

"""Acceptance 1-3 of issue 13, scaled down: four processes share one call budget through a real Redis.

The judge is the mock's own timeline (requests received per 10 ms on its clock), never the clients' timers:
the combined rate, the busiest 1 s window, and the silence during a Retry-After pause are counted there.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from crmload.mock import FaultPlan, MockCrm

WORKER = Path(__file__).with_name("budget_worker.py")
PROCS = 4
RATE = 40.0
BURST = 1
#: Arrival jitter: a call booked just before a window can reach the mock just inside it (thread wake-up,
#: loopback), so a window may hold one call more than the schedule's rate + burst. Nothing else is allowed.
ARRIVAL_SLACK = 1
pytestmark = pytest.mark.slow


def start_workers(crm: MockCrm, store: str, rows: int) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), crm.url, store, str(RATE), str(BURST), str(rows), f"p{i}", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCS)
    ]


def finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    logs = []
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        logs.append(err)
    return logs


def timeline(crm: MockCrm) -> tuple[dict[int, int], float]:
    t = crm.stats()["requests_timeline"]
    return {int(k): n for k, n in t["counts"].items()}, float(t["bin_s"])


def busiest_window(counts: dict[int, int], bins: int) -> int:
    """The most requests in any ``bins`` consecutive bins (a sliding 1 s window in 10 ms steps)."""
    lo, hi = min(counts), max(counts)
    series = [counts.get(i, 0) for i in range(lo, hi + 1)]
    window = sum(series[:bins])
    best = window
    for i in range(bins, len(series)):
        window += series[i] - series[i - bins]
        best = max(best, window)
    return best


def combined_rate(counts: dict[int, int], bin_s: float) -> float:
    """Requests per second from the first request to the last, on the mock's clock."""
    span = (max(counts) - min(counts)) * bin_s
    return (sum(counts.values()) - BURST) / span


def wait_for_requests(crm: MockCrm, n: int) -> None:
    for _ in range(3000):
        if crm.stats()["requests"] >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"the workers never reached {n} requests")


def test_four_processes_share_one_rate(crm: MockCrm, redis_server) -> None:  # type: ignore[no-untyped-def]
    rows = 50
    finish(start_workers(crm, redis_server.url, rows))
    counts, bin_s = timeline(crm)
    assert sum(counts.values()) == PROCS * rows  # no busy answers, no retries: one request per row
    assert len({r["name"] for r in crm.records("account")}) == PROCS * rows
    assert busiest_window(counts, round(1 / bin_s)) <= RATE + BURST + ARRIVAL_SLACK
    assert combined_rate(counts, bin_s) == pytest.approx(RATE, rel=0.05)


def test_without_a_shared_store_four_processes_overshoot(crm: MockCrm) -> None:
    """The control: the same four processes with only their own budgets send about four times the rate."""
    finish(start_workers(crm, "", 50))
    counts, bin_s = timeline(crm)
    assert busiest_window(counts, round(1 / bin_s)) > 2 * RATE


def test_a_retry_after_met_by_one_pauses_all(crm: MockCrm, redis_server) -> None:  # type: ignore[no-untyped-def]
    pause_s = 2.0
    procs = start_workers(crm, redis_server.url, 40)
    wait_for_requests(crm, 40)
    crm.configure(FaultPlan(busy_next=1, retry_after_s=pause_s))  # exactly one request, one process, meets it
    finish(procs)
    stats = crm.stats()
    assert stats["faults_by_kind"] == {"busy_next": 1}
    (busy_at,) = stats["fault_times"]["busy_next"]
    counts, bin_s = timeline(crm)
    # The pause starts when the answer reaches its process (allow 0.1 s for that and for a call already on
    # its way) and lasts Retry-After seconds; the other three were sending 30 calls/s until then.
    first, last = int((busy_at + 0.1) / bin_s), int((busy_at + pause_s) / bin_s) - 1
    during = sum(n for b, n in counts.items() if first <= b <= last)
    after = sum(n for b, n in counts.items() if b > last)
    assert during == 0
    assert after > 0  # they all came back
    assert len(crm.records("account")) == PROCS * 40


def test_redis_killed_and_restarted_mid_run(crm: MockCrm, redis_server) -> None:  # type: ignore[no-untyped-def]
    rows = 100
    procs = start_workers(crm, redis_server.url, rows)
    wait_for_requests(crm, 100)
    redis_server.kill()
    wait_for_requests(crm, 200)
    redis_server.start()
    logs = finish(procs)
    names = [r["name"] for r in crm.records("account")]
    assert len(names) == PROCS * rows
    assert len(set(names)) == PROCS * rows  # every row once
    counts, bin_s = timeline(crm)
    # A restarted Redis has lost the schedule, and four processes rejoin one by one: the window that
    # spans the rejoin can hold the fallback's last local slots plus the fresh bucket's first slots (43 and
    # 44 against 42 were seen on a 2-core machine running other suites). 10 % over the rate is allowed
    # there; a fallback that ignored the share would put 4 x 40 calls in a window, which this still catches.
    assert busiest_window(counts, round(1 / bin_s)) <= RATE * 1.1 + BURST
    for log in logs:
        assert "unreachable" in log, log  # the fallback, logged (once per outage)
        assert log.count("WARNING crmload.budgets") == 1, log
        assert "is back" in log, log  # and the rejoin

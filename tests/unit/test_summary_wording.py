"""Issue 16 item 14, issue 14: waits as wall time; socket wording that fits a run that never connected."""

from __future__ import annotations

import json
import uuid

from crmload._waits import WaitUnion
from crmload.errors import AuthenticationError, RetryExhaustedError
from crmload.load import Loader
from crmload.load.summary import Summary, client_numbers
from crmload.throttle import CallLimiter, RateLimit


class FrozenClock:
    """Time stands still while the 'workers' queue up: every acquire happens at the same instant."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_four_workers_waiting_together_count_once_as_wall_time() -> None:
    clock = FrozenClock()
    limiter = CallLimiter(RateLimit(per_second=1.0), clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(4)]  # four workers arriving at t=0 for a 1/s limiter
    assert waits == [0.0, 1.0, 2.0, 3.0]
    stats = limiter.stats()
    assert stats["wait_s"] == 6.0  # the per-worker sum: more than the 3 s anyone actually lost
    assert stats["wait_wall_s"] == 3.0  # [0, 3]: the run was held back 3 s


def test_wait_union_merges_overlaps_and_keeps_gaps() -> None:
    union = WaitUnion()
    for start, end in [(0.0, 10.0), (0.0, 10.0), (5.0, 12.0), (20.0, 21.0), (20.5, 20.7)]:
        union.add(start, end)
    assert union.total == 13.0


def _client_stats(**over: object) -> dict[str, object]:
    stats: dict[str, object] = {
        "calls": 10,
        "requests": 10,
        "sockets_opened": 2,
        "connect_attempts": 2,
        "limiter_wait_s": 118.8,
        "limiter_wait_wall_s": 24.0,
        "retry_after_pause_s": 2.0,
    }
    stats.update(over)
    return stats


def _summary(stats: dict[str, object], duration_s: float = 30.0) -> Summary:
    return Summary(
        entity="account", mode="create", read=10, done=10, duration_s=duration_s, client=client_numbers(stats)
    )


def test_text_reports_wall_time_and_its_share_of_the_run() -> None:
    text = _summary(_client_stats()).render()
    assert "118.8" not in text, "the per-worker sum reads as a bug in a 30 s run"
    assert "rate limiter 24.0 s (80 % of the run)" in text
    assert "Retry-After pauses 2.0 s" in text
    assert "wall time" in text


def test_json_keeps_the_per_worker_sum_under_a_name_that_says_so() -> None:
    data = json.loads(_summary(_client_stats()).to_json())["client"]
    assert data["limiter_wait_s"] == 24.0
    assert data["limiter_wait_worker_sum_s"] == 118.8
    assert data["retry_after_wait_s"] == 2.0


def test_a_run_that_never_connected_does_not_claim_kept_connections() -> None:
    stats = _client_stats(requests=0, sockets_opened=0, connect_attempts=8)
    text = _summary(stats).render()
    assert "kept from before" not in text
    assert "0 sockets (no connection made: 8 connect attempts failed)" in text
    nothing = _summary(_client_stats(calls=0, requests=0, sockets_opened=0, connect_attempts=0)).render()
    assert "0 sockets (nothing sent)" in nothing


def test_a_second_run_on_a_warm_client_still_says_kept_from_before() -> None:
    text = _summary(_client_stats(requests=10, sockets_opened=0, connect_attempts=0)).render()
    assert "0 sockets (connections kept from before)" in text


def test_one_socket_is_singular() -> None:
    text = _summary(_client_stats(requests=10, sockets_opened=1, reuse_ratio=10.0)).render()
    assert "10 requests over 1 socket (10.0 requests per socket)" in text


def test_interrupted_run_exits_130_with_the_rest_pending() -> None:
    summary = Summary(
        entity="account",
        mode="create",
        read=10,
        done=4,
        pending=6,
        interrupted=True,
        journal="in.csv.crmload.sqlite",
    )
    assert summary.exit_code == 130
    assert "6 rows pending; --resume continues" in summary.render()
    assert json.loads(summary.to_json())["interrupted"] is True


class _StopsAtRow:
    """A client whose creates succeed until a given row, then are refused for good (a run-level fault)."""

    url = "http://fake.invalid/MSCRMServices/2007/CrmService.asmx"
    org = "Fake"

    def __init__(self, stop_at: str) -> None:
        self.stop_at = stop_at
        self.created = 0

    def create(self, entity: str, attrs: dict[str, object], *, id: object = None) -> uuid.UUID:
        if attrs.get("name") == self.stop_at:
            raise RetryExhaustedError("gave up", last=AuthenticationError("401"), attempts=8)
        self.created += 1
        return uuid.uuid4()

    def stats(self) -> dict[str, object]:
        return {}


def test_records_per_second_counts_rows_settled_not_rows_left_pending() -> None:
    ticks = iter([0.0])
    client = _StopsAtRow("N50")
    loader = Loader(client, "account", workers=1, read_chunk=10, clock=lambda: next(ticks, 10.0))
    rows = [{"name": f"N{i}"} for i in range(200)]
    try:
        summary = loader.run(rows)
    finally:
        loader.close()
    assert summary.fatal
    assert summary.pending > 0
    settled = summary.done + summary.rejected + summary.in_doubt
    assert settled == client.created == 50
    assert summary.records_per_s == settled / 10.0

"""Limiter schedules under a fake clock: fixed rates, burst, unlimited, threads, auto, Retry-After, guard."""

from __future__ import annotations

import itertools
import threading

import pytest

from crmload.budget import DEFAULT_PORT_BUDGET, PortBudget
from crmload.errors import ConfigError
from crmload.throttle import DEFAULT_RATE_LIMIT, CallLimiter, ConnectGuard, RateLimit, TokenBucket


class FakeClock:
    """A clock whose sleep advances time and records the sleep; ``frozen`` sleeps leave time alone."""

    def __init__(self, start: float = 0.0, *, frozen: bool = False) -> None:
        self.now = start
        self.frozen = frozen
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if not self.frozen:
                self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def limiter(rate: RateLimit, clock: FakeClock, budget: PortBudget = DEFAULT_PORT_BUDGET) -> CallLimiter:
    return CallLimiter(rate, budget, clock=clock, sleep=clock.sleep)


def start_times(lim: CallLimiter, clock: FakeClock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        lim.acquire()
        times.append(clock())
    return times


def test_16_per_second_is_evenly_spaced() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=16), clock)
    times = start_times(lim, clock, 33)
    assert times == pytest.approx([i / 16 for i in range(33)])
    assert clock.sleeps == pytest.approx([1 / 16] * 32)
    stats = lim.stats()
    assert (stats["calls"], stats["waits"]) == (33, 32)
    assert stats["wait_s"] == pytest.approx(2.0)


def test_500_per_second_allows_exactly_500_calls_in_a_second() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=500), clock)
    times = start_times(lim, clock, 1200)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.002] * 1199)
    assert sum(1 for t in times if t < 1.0 - 1e-9) == 500


def test_default_rate_is_the_port_budget() -> None:
    clock = FakeClock()
    lim = limiter(DEFAULT_RATE_LIMIT, clock)
    assert lim.current_rate == pytest.approx(3976 / 240)
    times = start_times(lim, clock, 3)
    assert times == pytest.approx([0.0, 240 / 3976, 480 / 3976])


def test_burst_then_spacing_then_burst_again_after_idle() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=10, burst=5), clock)
    times = start_times(lim, clock, 8)
    assert times == pytest.approx([0, 0, 0, 0, 0, 0.1, 0.2, 0.3])
    clock.advance(10.0)  # idle long enough for the bucket to refill
    times = start_times(lim, clock, 6)
    base = times[0]
    assert [t - base for t in times] == pytest.approx([0, 0, 0, 0, 0, 0.1])


def test_unlimited_never_sleeps() -> None:
    clock = FakeClock()
    for rate in (RateLimit.unlimited(), RateLimit.parse("unlimited"), RateLimit(per_second=None)):
        lim = limiter(rate, clock)
        assert all(lim.acquire() == 0.0 for _ in range(5000))
        assert lim.current_rate is None
        assert lim.stats()["calls"] == 5000
    assert clock.sleeps == []


def test_threads_get_distinct_evenly_spaced_slots() -> None:
    # A frozen clock: every thread reserves at t=0, so the waits it is told are exactly its slot times.
    clock = FakeClock(frozen=True)
    lim = limiter(RateLimit(per_second=16), clock)
    threads_n, per_thread = 8, 25
    barrier = threading.Barrier(threads_n)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        mine = [lim.acquire() for _ in range(per_thread)]
        with lock:
            waits.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = threads_n * per_thread
    assert sorted(waits) == pytest.approx([i / 16 for i in range(n)])
    assert lim.stats()["calls"] == n


def test_rate_change_applies_to_the_next_reservation() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 1, clock, clock.sleep)
    bucket.acquire()
    bucket.acquire()
    bucket.set_rate(2.0)
    bucket.acquire()  # the slot booked at 10/s
    before = clock()
    bucket.acquire()
    assert clock() - before == pytest.approx(0.5)


def calls(lim: CallLimiter, n: int, latency_s: float = 0.05) -> None:
    """``n`` calls as a worker makes them: acquire, then report success."""
    for _ in range(n):
        lim.acquire()
        lim.on_success(latency_s)


def test_auto_starts_at_budget_and_ramps_up_on_success() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit.parse("auto"), clock)
    start = DEFAULT_PORT_BUDGET.per_second
    assert lim.current_rate == pytest.approx(start)
    calls(lim, 19)
    assert lim.current_rate == pytest.approx(start)  # a window is 20 successes
    calls(lim, 1)
    growth = 1 + RateLimit.parse("auto").auto_increase
    assert lim.current_rate == pytest.approx(start * growth)
    calls(lim, 20 * 9)
    assert lim.current_rate == pytest.approx(start * growth**10)
    assert lim.stats()["rate_increases"] == 10
    assert lim.stats()["peak_rate"] == pytest.approx(start * growth**10)


def test_auto_does_not_grow_while_the_limiter_is_not_what_holds_calls_back() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=16, auto=True), clock)
    for _ in range(100):
        clock.advance(1.0)  # slow workers: every acquire finds its slot long free
        lim.acquire()
        lim.on_success(0.05)
    assert lim.current_rate == 16
    assert clock.sleeps == []


def test_auto_ramp_is_capped_by_auto_max() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit.parse("auto:20"), clock)
    calls(lim, 20 * 10)
    assert lim.current_rate == pytest.approx(20.0)


def test_auto_ramp_really_speeds_up_the_schedule() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=10, auto=True, auto_window=1, auto_increase=1.0), clock)
    lim.acquire()
    lim.acquire()  # booked at 10/s: t=0.1
    lim.on_success(0.01)  # doubles to 20/s
    t0 = clock()
    lim.acquire()  # the slot already booked at 10/s
    lim.acquire()
    assert clock() - t0 == pytest.approx(0.1 + 0.05)


def test_auto_halves_on_busy_once_per_cooldown_and_respects_the_floor() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=16, auto=True), clock)
    lim.on_busy(None)
    assert lim.current_rate == pytest.approx(8)
    lim.on_busy(None)  # the same busy spell, seen by another worker
    assert lim.current_rate == pytest.approx(8)
    rates = []
    for _ in range(8):
        clock.advance(1.0)
        lim.on_busy(None)
        rates.append(lim.current_rate)
    assert rates == pytest.approx([4, 2, 1, 1, 1, 1, 1, 1])
    stats = lim.stats()
    assert (stats["busy"], stats["rate_decreases"]) == (10, 4)


def test_auto_cuts_back_when_latency_rises() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=16, auto=True), clock)
    calls(lim, 20)
    assert lim.current_rate == pytest.approx(16 * (1 + RateLimit().auto_increase))
    raised = lim.current_rate
    calls(lim, 20, latency_s=0.5)  # the EWMA climbs well past 2x its lowest value
    assert lim.stats()["rate_decreases"] == 1
    assert lim.current_rate <= raised * RateLimit().auto_decrease


def test_auto_ignores_a_small_latency_wobble_on_a_fast_server() -> None:
    # 1 ms -> 6 ms is six times the best, but only 5 ms above it: noise on a LAN, not strain.
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=16, auto=True), clock)
    calls(lim, 20, latency_s=0.001)
    calls(lim, 60, latency_s=0.006)
    assert lim.stats()["rate_decreases"] == 0
    assert lim.current_rate > 16
    calls(lim, 40, latency_s=0.2)  # 200x the best and 199 ms above it: strain
    assert lim.stats()["rate_decreases"] >= 1


def test_auto_cuts_from_the_achieved_rate_then_creeps_additively_below_the_ceiling() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=100, auto=True), clock)
    for _ in range(40):  # the server completes only 40 calls a second, while the bucket allows 100
        clock.advance(0.025)
        lim.on_success(0.05)
    clock.advance(0.001)
    lim.on_busy(None)
    assert lim.current_rate == pytest.approx(20)  # half of the 40/s achieved, not half of 100
    ceiling = 0.9 * 40
    calls(lim, 20 * 3)  # slow start again, up to the ceiling strain revealed
    assert lim.current_rate == pytest.approx(ceiling)
    before = lim.stats()["rate_increases"]
    calls(lim, 20 * 5)  # above the ceiling: one small step per cooldown at most
    steps = lim.stats()["rate_increases"] - before
    assert 1 <= steps <= 1 + clock() // RateLimit().auto_cooldown_s
    assert lim.current_rate == pytest.approx(ceiling + steps * max(1.0, 0.02 * ceiling))


def test_fixed_rate_does_not_change_on_busy_or_success() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=16), clock)
    lim.on_busy(None)
    for _ in range(100):
        lim.on_success(0.01)
    assert lim.current_rate == 16


@pytest.mark.parametrize("rate", [RateLimit(per_second=16), RateLimit.parse("auto"), RateLimit.unlimited()])
def test_retry_after_pauses_every_acquirer_until_it_has_passed(rate: RateLimit) -> None:
    clock = FakeClock(frozen=True)
    lim = limiter(rate, clock)
    lim.on_busy(2.0)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        w = lim.acquire()
        with lock:
            waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(waits) == 4
    assert min(waits) == pytest.approx(2.0)
    clock.advance(10.0)
    assert lim.acquire() == 0.0
    stats = lim.stats()
    assert (stats["pauses"], stats["pause_s"]) == (1, pytest.approx(2.0))


def test_retry_after_pause_is_capped_and_only_extends() -> None:
    clock = FakeClock()
    lim = limiter(RateLimit(per_second=16, pause_max_s=5.0), clock)
    lim.on_busy(1000.0)
    lim.on_busy(1.0)  # an earlier end does not shorten the pause
    assert lim.acquire() == pytest.approx(5.0)
    assert lim.stats()["pauses"] == 1


def test_connect_guard_holds_any_time_wait_window_to_the_port_count() -> None:
    clock = FakeClock()
    budget = PortBudget(ports=50, time_wait_s=5.0)
    guard = ConnectGuard(budget, clock, clock.sleep)
    assert (guard.burst, guard.rate) == (8, pytest.approx(42 / 5))
    times = []
    for _ in range(300):
        guard.acquire()
        times.append(clock())
    assert times[:8] == [0.0] * 8
    # Sliding window of one TIME_WAIT: never more sockets than ports.
    worst = max(sum(1 for t in times if start <= t < start + 5.0 - 1e-9) for start in times)
    assert 49 <= worst <= 50  # at budget.per_second with the burst on top it would be 57
    assert guard.stats()["connections"] == 300


def test_connect_guard_default_is_the_2009_budget_and_clamps_burst() -> None:
    guard = ConnectGuard()
    assert guard.rate == pytest.approx((3976 - 8) / 240)
    tiny = ConnectGuard(PortBudget(ports=10, time_wait_s=5.0), burst=8)
    assert tiny.burst == 2


def test_connect_guard_counts_waits() -> None:
    clock = FakeClock()
    guard = ConnectGuard(PortBudget(ports=400, time_wait_s=4.0), clock, clock.sleep, burst=2)
    waited = [guard.acquire() for _ in range(5)]
    assert waited[:2] == [0.0, 0.0]
    assert waited[2:] == pytest.approx([1 / 99.5] * 3)
    stats = guard.stats()
    assert (stats["connections"], stats["waits"]) == (5, 3)


@pytest.mark.parametrize(
    ("text", "per_second", "auto", "auto_max"),
    [
        ("16", 16.0, False, None),
        (" 16.5 ", 16.5, False, None),
        ("500/s", 500.0, False, None),
        ("auto", None, True, None),
        ("AUTO:200", None, True, 200.0),
        ("none", None, False, None),
    ],
)
def test_parse(text: str, per_second: float | None, auto: bool, auto_max: float | None) -> None:
    rate = RateLimit.parse(text)
    assert (rate.per_second, rate.auto, rate.auto_max) == (per_second, auto, auto_max)


@pytest.mark.parametrize("text", ["", "fast", "0", "-3", "nan", "inf", "auto:x"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        RateLimit.parse(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"burst": 0},
        {"burst": True},
        {"per_second": 0},
        {"auto_decrease": 1.0},
        {"auto_min": 5, "auto_max": 2},
    ],
)
def test_rate_limit_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RateLimit(**kwargs)  # type: ignore[arg-type]


def test_describe() -> None:
    assert RateLimit(per_second=16).describe() == "16/s"
    assert RateLimit.parse("auto:200").describe() == "auto (max 200/s)"
    assert RateLimit.unlimited().describe() == "unlimited"

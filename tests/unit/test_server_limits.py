"""ServerLimits parsing and the server budget's decisions on a fake clock (no sockets, no threads waiting)."""

from __future__ import annotations

import itertools
import math

import pytest

from crmload._server_budget import ServerBudget
from crmload.errors import ConfigError, ServerBusyError, ServiceProtectionError
from crmload.load.budget_summary import server_budget_lines, server_budget_numbers
from crmload.server_limits import DEFAULT_SERVER_LIMITS, ServerLimits, limit_from_message
from crmload.soap.faults2011 import parse_fault

LIMITS = ServerLimits(requests=5, exec_s=1.0, concurrent=2, window_s=10.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_parse_values_default_and_off() -> None:
    assert ServerLimits.parse("200/4/8/10") == ServerLimits(
        requests=200, exec_s=4.0, concurrent=8, window_s=10
    )
    assert ServerLimits.parse(" 200/4.5/8 ").window_s == 300.0
    assert ServerLimits.parse("default") is DEFAULT_SERVER_LIMITS
    assert ServerLimits.parse("off") is None
    for bad in ("200/4", "a/b/c", "200.5/4/8", "0/4/8", "200/4/8/-1", "1/2/3/4/5"):
        with pytest.raises(ConfigError):
            ServerLimits.parse(bad)


def test_limits_stated_by_the_documented_messages() -> None:
    requests = "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
    assert limit_from_message("requests", requests) == (6000.0, 300.0)
    exec_msg = (
        "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds over time "
        "window of 300 seconds. Decrease number of concurrent requests"
    )
    assert limit_from_message("execution_time", exec_msg) == (1200.0, 300.0)
    assert limit_from_message("concurrency", "Number of concurrent requests exceeded the limit of 52.") == (
        52.0,
        None,
    )
    assert limit_from_message("requests", "something else") is None


def test_service_protection_faults_carry_their_facet() -> None:
    envelope = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        "<faultcode>s:Client</faultcode><faultstring>x</faultstring><detail>"
        '<OrganizationServiceFault xmlns="http://schemas.microsoft.com/xrm/2011/Contracts" '
        'xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><ErrorCode>{code}</ErrorCode>'
        "<Message>m</Message></OrganizationServiceFault></detail></s:Fault></s:Body></s:Envelope>"
    )
    facets = {-2147015902: "requests", -2147015903: "execution_time", -2147015898: "concurrency"}
    for code, facet in facets.items():
        error = parse_fault(500, envelope.format(code=code).encode(), {"Retry-After": "3"})
        assert isinstance(error, ServiceProtectionError)
        assert isinstance(error, ServerBusyError)  # retried and paused like any busy answer
        assert (error.facet, error.retry_after) == (facet, 3.0)


def test_first_call_goes_alone_then_concurrency_caps_in_flight() -> None:
    clock = Clock()
    budget = ServerBudget(LIMITS, clock=clock, pace=False)
    first = budget.enter(10)
    assert first.cost is None
    assert budget._hold(clock.now, None) == math.inf  # slow start: nothing else before the first answer
    clock.now = 0.1
    budget.leave(first, 0.1)
    assert budget.max_batch() == int(0.95 * 1.0 / (2 * 2 * 0.01))
    a = budget.enter(1)
    b = budget.enter(1)
    assert budget._hold(clock.now, 0.01) == math.inf  # two in flight: the cap
    budget.leave(a, 0.01)
    assert budget._hold(clock.now, 0.01) is None
    budget.leave(b, 0.01)


def test_execution_time_and_request_windows_hold_calls_until_they_drain() -> None:
    clock = Clock()
    budget = ServerBudget(LIMITS, clock=clock, pace=False)
    t = budget.enter(50)
    clock.now = 0.9
    budget.leave(t, 0.9)  # 0.018 s a record
    # 0.9 s of the 0.95 s allowed has run: a call may go (the server admits on what has run) ...
    assert budget._hold(clock.now, 0.18) is None
    held = budget.enter(5)  # ... but with its 0.09 s in flight, the next one waits for the window to drain
    assert budget._hold(clock.now, 0.01) == pytest.approx(10.0)
    clock.now = 1.0
    budget.leave(held, 0.1)
    assert budget._hold(clock.now, 0.01) == pytest.approx(9.9)  # 1.0 s run: until the first call leaves
    clock.now = 11.0
    assert budget._hold(clock.now, 0.18) is None
    for _ in range(5):
        budget.leave(budget.enter(1), 0.001)
    assert budget._hold(clock.now, 0.001) == pytest.approx(10.0)  # 5 requests in the window: the limit
    assert budget.stats()["peak_share"]["requests"] == 1.0


def test_a_fault_at_a_limit_already_kept_counts_the_calls_own_estimate_from_then_on() -> None:
    clock = Clock()
    budget = ServerBudget(LIMITS, clock=clock, pace=False)
    budget.leave(budget.enter(10), 0.5)  # 0.05 s a record
    held = budget.enter(8)  # 0.4 s in flight: 0.9 s counted
    assert budget._hold(clock.now, 0.1) is None  # its own 0.1 s may cross the line
    message = (
        "Combined execution time of incoming requests exceeded limit of 1,000 milliseconds over time "
        "window of 10 seconds."
    )
    budget.on_throttle("execution_time", message, 1.0)
    assert budget.limits == LIMITS  # nothing lower to learn
    assert budget._hold(clock.now, 0.1) == pytest.approx(10.0)  # strict: 0.5 + 0.4 + 0.1 > 0.95
    budget.leave(held, 0.4)
    assert "execution_time_own_estimate" in budget.stats()["learned"]


def test_a_fault_lowers_the_limit_it_names_and_counts_by_facet() -> None:
    budget = ServerBudget(DEFAULT_SERVER_LIMITS, clock=Clock())
    message = (
        "Combined execution time of incoming requests exceeded limit of 4,000 milliseconds over time "
        "window of 10 seconds."
    )
    budget.on_throttle("execution_time", message, 2.5)
    budget.on_throttle("concurrency", "Number of concurrent requests exceeded the limit of 8.", 0.1)
    assert budget.limits == ServerLimits(requests=6000, exec_s=4.0, concurrent=8, window_s=10.0)
    stats = budget.stats()
    assert stats["throttles"] == {"requests": 0, "execution_time": 1, "concurrency": 1}
    assert stats["throttle_wait_s"] == 2.6
    assert set(stats["learned"]) == {"execution_time", "concurrency"}


def test_a_fault_without_the_documented_wording_lowers_to_what_this_client_had() -> None:
    clock = Clock()
    budget = ServerBudget(LIMITS, clock=clock, pace=False)
    for _ in range(4):
        budget.leave(budget.enter(1), 0.1)
    budget.on_throttle("requests", "slow down", 1.0)
    assert budget.limits is not None
    assert budget.limits.requests == 3  # 90 % of the 4 in the window


def test_dop_hint_caps_concurrency_and_off_only_counts() -> None:
    clock = Clock()
    budget = ServerBudget(ServerLimits(concurrent=52), clock=clock, pace=False)
    budget.leave(budget.enter(1), 0.01)
    budget.dop_hint("1")
    budget.dop_hint("junk")
    held = budget.enter(1)
    assert budget._hold(clock.now, 0.01) == math.inf
    budget.leave(held, 0.01)
    off = ServerBudget(None, clock=clock)
    assert not off.active
    off.on_throttle(
        "requests", "Number of requests exceeded the limit of 20 over time window of 2 seconds.", 1
    )
    assert off.limits is None
    assert off.stats()["throttles_total"] == 1


def test_summary_lines_show_the_share_of_each_facet_and_throttles() -> None:
    clock = Clock()
    budget = ServerBudget(LIMITS, clock=clock, pace=False)
    t = budget.enter(10)
    clock.now = 10.0
    budget.leave(t, 0.5)
    budget.on_throttle("concurrency", "no wording", 1.5)
    numbers = server_budget_numbers(budget.stats())
    assert numbers is not None
    assert numbers["share_pct"]["execution_time"] == 50.0
    assert numbers["throttles"] == {"requests": 0, "execution_time": 0, "concurrency": 1}
    text = "\n".join(server_budget_lines(numbers))
    assert "execution time 50 % of budget" in text
    assert "1 throttle (concurrency 1)" in text
    assert server_budget_lines(None) == []


def test_a_window_wait_sleeps_on_the_injected_clock_until_it_drains() -> None:
    clock = Clock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    budget = ServerBudget(LIMITS, clock=clock, sleep=sleep, pace=False)
    budget.leave(budget.enter(10), 1.0)  # 1.0 s run: over the 0.95 s allowed until it leaves the window
    clock.now = 2.0
    budget.leave(budget.enter(1), 0.01)
    assert slept == [pytest.approx(8.0)]
    stats = budget.stats()
    assert (stats["holds"], stats["hold_s"]) == (1, pytest.approx(8.0))


def test_calls_and_execution_are_paced_inside_the_window() -> None:
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    limits = ServerLimits(requests=8, exec_s=100.0, concurrent=2, window_s=8.0)
    budget = ServerBudget(limits, clock=clock, sleep=sleep)
    starts = []
    for _ in range(12):
        ticket = budget.enter(1)
        starts.append(clock.now)
        budget.leave(ticket, 0.001)
    # Paced at one call a second (a twentieth of the window early), never 8 within 8 s, never a long stall.
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert max(gaps) <= 1.5
    assert sum(1 for g in gaps if g == pytest.approx(1.0)) >= 8
    assert max(sum(1 for u in starts if t - 8 < u <= t) for t in starts) <= 8

    slow = ServerBudget(ServerLimits(requests=6000, exec_s=1.0, window_s=10.0), clock=clock, sleep=sleep)
    clock.now = 100.0
    slow.leave(slow.enter(10), 0.1)  # 0.01 s a record; 0.095 s of execution a second is the pace
    times = []
    for _ in range(5):
        slow.leave(slow.enter(10), 0.1)
        times.append(clock.now)
    assert [b - a for a, b in itertools.pairwise(times[1:])] == [pytest.approx(0.1 / 0.095)] * 3

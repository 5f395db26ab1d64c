"""Retry classification by phase, waits (Retry-After, backoff with jitter), deadline and give-up."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from tenacity import RetryCallState

from crmload.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    CrmFault,
    DuplicateRecord,
    InputError,
    PortExhaustedError,
    ProtocolError,
    RecordNotFound,
    ResponseLostError,
    RetryExhaustedError,
    ServerBusyError,
)
from crmload.retry import DEFAULT_RETRY_POLICY, RetryPolicy, RetryStats, retry_cause, retrying


class FakeClock:
    """A clock whose sleep advances time and records each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(*errors: BaseException, result: Any = "ok") -> tuple[Callable[[], Any], list[int]]:
    """A callable that raises ``errors`` in turn, then returns ``result``; also returns its call log."""
    calls: list[int] = []

    def fn() -> Any:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return fn, calls


NO_JITTER = RetryPolicy(jitter=False)


def test_connect_error_is_retried_with_backoff() -> None:
    clock = FakeClock()
    stats = RetryStats()
    fn, calls = failing(ConnectError("refused"), PortExhaustedError("EADDRNOTAVAIL", errno=99))
    r = retrying(NO_JITTER, idempotent=False, sleep=clock.sleep, clock=clock, stats=stats)
    assert r(fn) == "ok"
    assert len(calls) == 3
    assert clock.sleeps == [0.5, 1.0]
    assert stats.snapshot() == {"connect": 1, "port_exhausted": 1, "busy": 0, "response_lost": 0}


def test_backoff_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=9, backoff_base_s=0.5, backoff_max_s=4.0, jitter=False, deadline_s=None)
    fn, _ = failing(*[ConnectError("refused") for _ in range(8)])
    retrying(policy, idempotent=False, sleep=clock.sleep, clock=clock)(fn)
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def test_full_jitter_is_seedable_and_within_the_window() -> None:
    clock = FakeClock()
    fn, _ = failing(*[ConnectError("refused") for _ in range(5)])
    retrying(idempotent=False, sleep=clock.sleep, clock=clock, rng=random.Random(7))(fn)
    ref = random.Random(7)
    assert clock.sleeps == [ref.uniform(0, w) for w in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert clock.sleeps != [0.5, 1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize("idempotent", [True, False])
def test_response_lost_is_retried_only_when_idempotent(idempotent: bool) -> None:
    clock = FakeClock()
    lost = ResponseLostError("connection reset after send")
    fn, calls = failing(lost)
    r = retrying(NO_JITTER, idempotent=idempotent, sleep=clock.sleep, clock=clock)
    if idempotent:
        assert r(fn) == "ok"
        assert len(calls) == 2
    else:
        with pytest.raises(ResponseLostError) as info:
            r(fn)
        assert info.value is lost
        assert len(calls) == 1
        assert clock.sleeps == []


def test_busy_with_retry_after_2_sleeps_exactly_2() -> None:
    clock = FakeClock()
    stats = RetryStats()
    fn, calls = failing(ServerBusyError("503", status=503, retry_after=2))
    assert retrying(idempotent=False, sleep=clock.sleep, clock=clock, stats=stats)(fn) == "ok"
    assert clock.sleeps == [2.0]
    assert len(calls) == 2
    assert stats.snapshot()["busy"] == 1


def test_busy_without_retry_after_backs_off_and_huge_retry_after_is_capped() -> None:
    clock = FakeClock()
    fn, _ = failing(ServerBusyError("429", status=429), ServerBusyError("busy", retry_after=10_000))
    retrying(NO_JITTER, idempotent=False, sleep=clock.sleep, clock=clock)(fn)
    assert clock.sleeps == [0.5, 300.0]


def test_give_up_raises_retry_exhausted_carrying_the_last_cause() -> None:
    clock = FakeClock()
    stats = RetryStats()
    errors = [ConnectError(f"refused #{i}") for i in range(3)]
    fn, calls = failing(*errors)
    r = retrying(RetryPolicy(max_attempts=3), idempotent=False, sleep=clock.sleep, clock=clock, stats=stats)
    with pytest.raises(RetryExhaustedError) as info:
        r(fn)
    assert info.value.last is errors[-1]
    assert info.value.__cause__ is errors[-1]
    assert info.value.attempts == 3
    assert "ConnectError" in str(info.value)
    assert "refused #2" in str(info.value)
    assert len(calls) == 3
    assert (stats.total, stats.gave_up) == (2, 1)


def test_deadline_uses_the_injected_clock() -> None:
    clock = FakeClock()
    clock.now = 1_000_000.0  # nowhere near time.monotonic(), so tenacity's own clock cannot be what stops it
    policy = RetryPolicy(max_attempts=100, deadline_s=10.0)
    fn, calls = failing(*[ServerBusyError("busy", retry_after=4) for _ in range(100)])
    with pytest.raises(RetryExhaustedError) as info:
        retrying(policy, idempotent=False, sleep=clock.sleep, clock=clock)(fn)
    # attempts at t=0, 4, 8; a third wait would end at 12 > 10
    assert clock.sleeps == [4.0, 4.0]
    assert len(calls) == info.value.attempts == 3


def test_one_retrying_object_restarts_the_deadline_per_call() -> None:
    clock = FakeClock()
    r = retrying(RetryPolicy(deadline_s=5.0), idempotent=False, sleep=clock.sleep, clock=clock)
    for _ in range(3):
        fn, calls = failing(ServerBusyError("busy", retry_after=4))
        assert r(fn) == "ok"
        assert len(calls) == 2


@pytest.mark.parametrize(
    "error",
    [
        CrmFault("fault", code="0x80040216"),
        DuplicateRecord("dup"),
        RecordNotFound("gone"),
        AuthenticationError("401"),
        InputError("bad row", line_no=3),
        ProtocolError("not xml", status=200),
        ConfigError("bad url"),
        ValueError("a bug"),
    ],
)
def test_other_errors_propagate_unchanged_without_retry(error: Exception) -> None:
    clock = FakeClock()
    fn, calls = failing(error)
    with pytest.raises(type(error)) as info:
        retrying(idempotent=True, sleep=clock.sleep, clock=clock)(fn)
    assert info.value is error
    assert len(calls) == 1
    assert clock.sleeps == []


def test_hooks_see_each_retry() -> None:
    clock = FakeClock()
    seen: list[tuple[str, int, float]] = []

    def on_retry(state: RetryCallState) -> None:
        assert state.outcome is not None
        seen.append(("on_retry", state.attempt_number, state.upcoming_sleep))

    def before_sleep(state: RetryCallState) -> None:
        seen.append(("before_sleep", state.attempt_number, state.upcoming_sleep))

    fn, _ = failing(ServerBusyError("busy", retry_after=1.5))
    retrying(idempotent=False, sleep=clock.sleep, clock=clock, on_retry=on_retry, before_sleep=before_sleep)(
        fn
    )
    assert seen == [("on_retry", 1, 1.5), ("before_sleep", 1, 1.5)]


def test_retry_cause_names() -> None:
    assert retry_cause(PortExhaustedError("x"), idempotent=False) == "port_exhausted"
    assert retry_cause(ConnectError("x"), idempotent=False) == "connect"
    assert retry_cause(ServerBusyError("x"), idempotent=False) == "busy"
    assert retry_cause(ResponseLostError("x"), idempotent=True) == "response_lost"
    assert retry_cause(ResponseLostError("x"), idempotent=False) is None
    assert retry_cause(DuplicateRecord("x"), idempotent=True) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": True},
        {"deadline_s": 0},
        {"backoff_base_s": -1},
        {"backoff_base_s": 5.0, "backoff_max_s": 1.0},
        {"retry_after_max_s": float("nan")},
    ],
)
def test_policy_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)


def test_defaults() -> None:
    assert (
        RetryPolicy(max_attempts=8, deadline_s=600.0, backoff_base_s=0.5, backoff_max_s=30.0, jitter=True)
        == DEFAULT_RETRY_POLICY
    )

"""Issue 16 item 13: each retry logged at INFO with cause and wait; a huge Retry-After capped loudly."""

from __future__ import annotations

import logging

import pytest

from crmload.errors import ConnectError, ServerBusyError
from crmload.retry import RetryPolicy, retrying


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _flaky(*errors: Exception) -> object:
    pending = list(errors)

    def fn() -> str:
        if pending:
            raise pending.pop(0)
        return "ok"

    return fn


def test_each_retry_is_logged_at_info_with_cause_and_wait(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    policy = RetryPolicy(jitter=False, backoff_base_s=0.5)
    fn = _flaky(ConnectError("connection refused"), ServerBusyError("busy", retry_after=7.0))
    with caplog.at_level(logging.INFO, logger="crmload.retry"):
        result = retrying(policy, idempotent=False, sleep=clock.sleep, clock=clock)(fn)
    assert result == "ok"
    assert clock.sleeps == [0.5, 7.0]
    infos = [r for r in caplog.records if r.name == "crmload.retry" and r.levelno == logging.INFO]
    assert len(infos) == 2
    first, second = (r.getMessage() for r in infos)
    assert "connect" in first
    assert "0.5 s" in first
    assert "connection refused" in first
    assert "busy" in second
    assert "7 s" in second


def test_a_huge_retry_after_is_capped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    policy = RetryPolicy(jitter=False, retry_after_max_s=300.0)
    fn = _flaky(ServerBusyError("busy", retry_after=86400.0))
    with caplog.at_level(logging.INFO, logger="crmload.retry"):
        retrying(policy, idempotent=False, sleep=clock.sleep, clock=clock)(fn)
    assert clock.sleeps == [300.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "86400" in warnings[0]
    assert "300" in warnings[0]


def test_a_retry_after_within_the_cap_gives_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    fn = _flaky(ServerBusyError("busy", retry_after=300.0))
    with caplog.at_level(logging.INFO, logger="crmload.retry"):
        retrying(RetryPolicy(jitter=False), idempotent=False, sleep=clock.sleep, clock=clock)(fn)
    assert clock.sleeps == [300.0]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []

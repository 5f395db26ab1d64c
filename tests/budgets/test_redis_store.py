"""RedisStore against a real redis-server: one rate, one pause and one rate change shared by every holder of
a key; the fallback when Redis dies and the rejoin when it is back; no password in reprs or logs."""

from __future__ import annotations

import logging
import time

import pytest

from crmload.budgets import BudgetKey, RedisStore
from crmload.throttle import CallLimiter, RateLimit

KEY = BudgetKey("http://127.0.0.1:1/XRMServices/2011/Organization.svc/web", "svc")


def no_sleep(seconds: float) -> None:
    """The store must be asked, not slept on: record nothing, return at once."""


def test_two_holders_share_one_schedule(redis_server) -> None:  # type: ignore[no-untyped-def]
    a = RedisStore(redis_server.url).open(KEY, rate=10.0, burst=1, sleep=no_sleep)
    b = RedisStore(redis_server.url).open(KEY, rate=10.0, burst=1, sleep=no_sleep)
    waits = []
    for i in range(20):
        now, slot = (a if i % 2 else b).reserve()
        waits.append(slot - now)
    # 20 slots 0.1 s apart, booked in far less than 0.1 s: the 20th is ~1.9 s out whichever holder booked it.
    assert waits == sorted(waits)
    assert waits[-1] > 1.5
    assert waits[0] == 0.0


def test_distinct_keys_do_not_share(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(redis_server.url)
    a = store.open(KEY, rate=10.0, burst=1, sleep=no_sleep)
    other = store.open(BudgetKey(KEY.url, "another-user"), rate=10.0, burst=1, sleep=no_sleep)
    for _ in range(10):
        a.reserve()
    now, slot = other.reserve()
    assert slot == now


def test_pause_and_rate_reach_every_holder(redis_server) -> None:  # type: ignore[no-untyped-def]
    slept: list[float] = []
    a = RedisStore(redis_server.url).open(KEY, rate=1000.0, burst=1, sleep=no_sleep)
    b = RedisStore(redis_server.url).open(KEY, rate=1000.0, burst=1, sleep=slept.append)
    a.reserve()
    a.pause_until(time.monotonic() + 30.0)
    b.reserve()
    assert slept
    assert slept[0] > 25.0  # b waited for a's pause (the sleep was recorded, not taken)
    a.set_rate(5.0)
    b.reserve()
    assert b.rate == 5.0
    state = b.read()  # type: ignore[attr-defined]
    assert state["rate"] == 5.0
    assert state["participants"] == 2
    assert 25.0 < state["paused_s"] <= 30.0


def test_limiter_on_a_shared_store_pauses_through_it(redis_server) -> None:  # type: ignore[no-untyped-def]
    slept: list[float] = []
    store = RedisStore(redis_server.url)
    one = CallLimiter(RateLimit(per_second=1000), store=store, key=KEY, sleep=no_sleep)
    two = CallLimiter(RateLimit(per_second=1000), store=store, key=KEY, sleep=slept.append)
    one.on_busy(20.0)
    waited = two.acquire()
    assert waited > 15.0
    assert sum(slept) == pytest.approx(waited, abs=0.05)  # slept inside the store, once: not twice
    stats = two.stats()
    assert stats["budget_shared"] is True
    assert stats["budget_store"] == f"redis {redis_server.url}"


def test_fallback_then_rejoin(redis_server, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="crmload.budgets")
    store = RedisStore(redis_server.url, probe_interval_s=0.0, fresh_min_s=0.0)
    a = store.open(KEY, rate=100.0, burst=1, sleep=no_sleep)
    b = RedisStore(redis_server.url).open(KEY, rate=100.0, burst=1, sleep=no_sleep)
    a.reserve()
    b.reserve()  # two participants seen
    a.reserve()
    redis_server.kill()
    a.reserve()
    a.reserve()
    stats = a.shared_stats()  # type: ignore[attr-defined]
    assert stats["budget_in_fallback"] is True
    assert stats["budget_fallbacks"] == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage, not per call
    assert "45/s over 2 participants" in warnings[0].getMessage()
    redis_server.start()
    a.reserve()
    stats = a.shared_stats()  # type: ignore[attr-defined]
    assert stats["budget_in_fallback"] is False
    assert stats["budget_rejoins"] == 1
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("is back" in m for m in infos)
    # The first one back told Redis it had seen 2: until the other returns it gets half the rate.
    state = a.read()  # type: ignore[attr-defined]
    assert state["expected"] == 2
    assert state["rate"] == 100.0  # restored from the rejoining process: the restart lost it


def test_rejoin_takes_only_its_share_until_the_others_return(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(redis_server.url, probe_interval_s=0.0, fresh_min_s=0.0)
    budget = store.open(KEY, rate=10.0, burst=1, sleep=no_sleep)
    budget._participants = 4  # type: ignore[attr-defined]  # as if four had been counted before
    redis_server.kill()
    budget.reserve()
    redis_server.start()
    waits = []
    for _ in range(3):
        now, slot = budget._book()[:2]  # type: ignore[attr-defined]
        waits.append(slot - now)
    # alone in Redis but expecting 4: slots 4 / 10 s apart, not 1 / 10
    assert waits[2] - waits[1] > 0.35


def test_password_never_in_repr_logs_or_stats(redis_factory, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    server = redis_factory(password="hunter2-secret")
    store = RedisStore(server.url, probe_interval_s=0.0)
    limiter = CallLimiter(RateLimit(per_second=1000), store=store, key=KEY, sleep=no_sleep)
    limiter.acquire()  # authenticated: the script ran
    assert limiter.stats()["budget_fallbacks"] == 0
    server.kill()
    limiter.acquire()
    text = repr(store) + store.describe() + str(limiter.stats()) + caplog.text
    assert "hunter2" not in text
    assert "***" in repr(store)
    assert limiter.stats()["budget_fallbacks"] == 1


def test_unlimited_shares_only_the_pause(redis_server) -> None:  # type: ignore[no-untyped-def]
    slept: list[float] = []
    store = RedisStore(redis_server.url)
    a = CallLimiter(RateLimit.unlimited(), store=store, key=KEY, sleep=no_sleep)
    b = CallLimiter(RateLimit.unlimited(), store=store, key=KEY, sleep=slept.append)
    assert [b.acquire() for _ in range(5)] == [0.0] * 5
    assert b.current_rate is None
    a.on_busy(10.0)
    assert b.acquire() > 5.0

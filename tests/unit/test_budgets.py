"""The limiter's storage seam: the local store is today's bucket, a custom store gets every operation."""

from __future__ import annotations

import pytest

from crmload.budgets import BudgetKey, LocalStore, open_store, redact_url
from crmload.errors import ConfigError
from crmload.throttle import CallLimiter, RateLimit, TokenBucket


class RecordingStore:
    """A store that books slots like the local one and records what the limiter asked of it."""

    shared = True

    def __init__(self) -> None:
        self.opened: list[tuple[BudgetKey, float | None, int]] = []
        self.bucket: TokenBucket | None = None
        self.pauses: list[float] = []
        self.rates: list[float] = []

    def open(self, key, *, rate, burst, clock, sleep):  # type: ignore[no-untyped-def]
        self.opened.append((key, rate, burst))
        outer = self

        class Spy(TokenBucket):
            def set_rate(self, rate: float) -> None:
                outer.rates.append(rate)
                super().set_rate(rate)

            def pause_until(self, instant: float) -> None:
                outer.pauses.append(instant)
                super().pause_until(instant)

        self.bucket = Spy(rate if rate is not None else 1e9, burst, clock, sleep)
        return self.bucket

    def describe(self) -> str:
        return "recording"


def test_local_store_is_todays_bucket() -> None:
    budget = LocalStore().open(BudgetKey("u"), rate=4.0, burst=1, clock=lambda: 0.0)
    assert isinstance(budget, TokenBucket)
    assert LocalStore().open(BudgetKey("u"), rate=None, burst=1) is None
    assert LocalStore().shared is False


def test_limiter_books_pauses_and_sets_rate_through_the_store() -> None:
    t = [0.0]
    store = RecordingStore()
    lim = CallLimiter(
        RateLimit(per_second=4, auto=True, auto_window=1, auto_cooldown_s=0),
        clock=lambda: t[0],
        sleep=lambda s: t.__setitem__(0, t[0] + s),
        store=store,
        key=BudgetKey("http://crm/x", "alice"),
    )
    assert store.opened == [(BudgetKey("http://crm/x", "alice"), 4.0, 1)]
    assert [lim.acquire() for _ in range(3)] == [0.0, 0.25, 0.25]
    lim.on_busy(2.0)
    assert store.pauses == [t[0] + 2.0]
    assert store.rates  # auto cut the rate through the store
    assert lim.acquire() == pytest.approx(2.0)
    assert lim.stats()["budget_store"] == "recording"


def test_default_store_is_local_and_stats_say_so() -> None:
    lim = CallLimiter(RateLimit(per_second=4))
    assert isinstance(lim.store, LocalStore)
    assert lim.stats()["budget_store"] == "local"


def test_key_digest_names_neither_url_nor_user() -> None:
    key = BudgetKey("https://crm.example/org", "svc-migrate")
    assert key.digest == BudgetKey("https://crm.example/org", "svc-migrate").digest
    assert key.digest != BudgetKey("https://crm.example/org", "other").digest
    assert "svc" not in key.digest
    assert "example" not in key.digest


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://bob:hunter2@[::1]:6380/1", "redis://bob:***@[::1]:6380/1"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://cache/0?password=hunter2&db=1", "redis://cache/0?password=***&db=1"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert "hunter2" not in redact_url(url)


def test_open_store_local_and_bad_scheme() -> None:
    assert isinstance(open_store(None), LocalStore)
    assert isinstance(open_store("local"), LocalStore)
    with pytest.raises(ConfigError, match=r"\*\*\*") as info:
        open_store("http://u:hunter2@h/")
    assert "hunter2" not in str(info.value)

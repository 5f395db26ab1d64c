"""Fault injection for the mock: a frozen, validated ``FaultPlan`` and the seeded ``FaultInjector`` that
applies it.

Example::

    plan = FaultPlan(busy_rate=0.1, retry_after_s=2, reset_after_commit_rate=0.01, seed=7)
    with MockCrm(faults=plan) as crm: ...
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from crmload.errors import ConfigError
from crmload.mock.values import Value

__all__ = ["DEFAULT_FAULT_PLAN", "FaultInjector", "FaultPlan", "mutable_attribute", "mutated"]

_MUTABLE = ("String", "CrmNumber", "CrmMoney", "CrmDecimal", "CrmFloat")

_RATES = (
    "busy_rate",
    "reset_before_commit_rate",
    "reset_after_commit_rate",
    "silent_drop_rate",
    "mutate_rate",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """What the mock does wrong, and how often. All fractions are per SOAP request, drawn from a seeded RNG.

    Attributes:
        latency_ms: fixed extra delay before each SOAP request is handled.
        jitter_ms: uniform random extra delay in ``[0, jitter_ms]`` on top of ``latency_ms``.
        busy_rate: fraction answered HTTP 503 "Service Unavailable", as IIS does when its queue is full.
        retry_after_s: when set, busy answers carry ``Retry-After`` with this many seconds.
        reset_before_commit_rate: fraction where the socket is reset (RST, no answer) before the store
        commits.
        reset_after_commit_rate: fraction where the store commits and then the socket is reset: "maybe
        applied".
        close_every: answer ``Connection: close`` and close after every N-th response on a connection (0 =
        never).
        max_connections: connections beyond this many open ones get a 503 and are closed (0 = unlimited).
        first_request_cost_ms: extra delay on each connection's first request (a stand-in for a handshake).
        exec_ms_per_record: server execution time per record a request works on (an ExecuteMultiple of 1,000
            creates costs 1,000x), added before the answer, as a real server's database time.
        busy_above_rate: answer busy when more than this many SOAP requests arrived in the last second (0 =
        off).
        privilege_denied_after: refuse every Create after the first N with PrivilegeDenied 0x80040220, as CRM
        does once a user loses a privilege mid-run; 0 refuses them all (None = off).
        silent_drop_rate: fraction of created records (batch items included) that the answer reports as
            created but the store loses right after: a server bug only a verification can catch.
        mutate_rate: fraction of created records stored with one attribute changed (a string gets " ~",
            a number +1): the other such bug. Both are listed in ``stats()["corrupted"]``.
        busy_next: answer the next N SOAP requests busy (with ``retry_after_s``), then none: exactly N busy
            answers whatever the timing, for tests that need one client to meet one Retry-After.
        seed: RNG seed, so runs repeat.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    busy_rate: float = 0.0
    retry_after_s: float | None = None
    reset_before_commit_rate: float = 0.0
    reset_after_commit_rate: float = 0.0
    close_every: int = 0
    max_connections: int = 0
    first_request_cost_ms: float = 0.0
    exec_ms_per_record: float = 0.0
    busy_above_rate: float = 0.0
    privilege_denied_after: int | None = None
    silent_drop_rate: float = 0.0
    mutate_rate: float = 0.0
    busy_next: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in _RATES:
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"FaultPlan.{name} must be within [0, 1], got {rate!r}")
        for name in (
            "latency_ms",
            "jitter_ms",
            "first_request_cost_ms",
            "exec_ms_per_record",
            "busy_above_rate",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"FaultPlan.{name} must be >= 0")
        if self.retry_after_s is not None and self.retry_after_s < 0:
            raise ConfigError("FaultPlan.retry_after_s must be >= 0")
        if self.busy_next < 0:
            raise ConfigError("FaultPlan.busy_next must be >= 0")
        if self.close_every < 0 or self.max_connections < 0 or (self.privilege_denied_after or 0) < 0:
            raise ConfigError(
                "FaultPlan.close_every, max_connections and privilege_denied_after must be >= 0"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        """Build a plan from a dict (e.g. the JSON of ``POST /_mock/faults``); unknown keys are a
        ConfigError."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown fault plan keys: {sorted(unknown)}")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ConfigError(f"bad fault plan: {exc}") from exc


DEFAULT_FAULT_PLAN = FaultPlan()


class FaultInjector:
    """Draws the plan's decisions from one seeded RNG, behind a lock; keeps the recent request times."""

    def __init__(self, plan: FaultPlan, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.plan = plan
        self._rng = random.Random(plan.seed)
        self._recent: deque[float] = deque()
        self._creates = 0
        self._busy_left = plan.busy_next

    def configure(self, plan: FaultPlan) -> None:
        """Switch to a new plan and reseed."""
        with self._lock:
            self.plan = plan
            self._rng = random.Random(plan.seed)
            self._recent.clear()
            self._creates = 0
            self._busy_left = plan.busy_next

    def take_busy(self) -> bool:
        """Return True for each of the plan's ``busy_next`` requests after it was configured."""
        if self._busy_left <= 0:
            return False
        with self._lock:
            if self._busy_left <= 0:
                return False
            self._busy_left -= 1
            return True

    def deny_create(self) -> bool:
        """Count one Create; return True when ``privilege_denied_after`` says to refuse it."""
        after = self.plan.privilege_denied_after
        if after is None:
            return False
        with self._lock:
            self._creates += 1
            return self._creates > after

    def chance(self, rate: float) -> bool:
        """Return True with probability ``rate`` (no RNG draw when the rate is 0, so plans stay
        repeatable)."""
        if rate <= 0.0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def delay_s(self) -> float:
        """Return this request's injected latency in seconds."""
        plan = self.plan
        extra = 0.0
        if plan.jitter_ms > 0:
            with self._lock:
                extra = self._rng.uniform(0.0, plan.jitter_ms)
        return (plan.latency_ms + extra) / 1000.0

    def over_rate(self) -> bool:
        """Record one request; return True when more than ``busy_above_rate`` arrived in the last second."""
        limit = self.plan.busy_above_rate
        if limit <= 0:
            return False
        now = self._clock()
        with self._lock:
            recent = self._recent
            recent.append(now)
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            return len(recent) > limit


def mutable_attribute(rec: Mapping[str, Value], keys: set[str]) -> str | None:
    """The attribute ``mutate_rate`` changes: the first (by name) non-empty string or number, not a key."""
    for name in sorted(rec):
        value = rec[name]
        if value.type in _MUTABLE and value.value not in (None, "") and name not in keys:
            return name
    return None


def mutated(value: Value) -> Value:
    """``value`` changed the way a buggy server might: " ~" after a string, +1 on a number."""
    if value.type == "String":
        return Value(value.type, f"{value.value} ~", value.ref)
    return Value(value.type, value.value + 1, value.ref)

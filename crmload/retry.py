"""Retries: one ``RetryPolicy`` value, composed into tenacity parts in one function, ``retrying()``.

Classified by phase, using the error tree in ``crmload.errors``:

- ``ConnectError`` (and ``PortExhaustedError``): never sent, so always retried. The next attempt opens a new
  socket and so passes through the ``ConnectGuard`` again.
- ``ServerBusyError``: always retried, after its ``retry_after`` (capped) or else backoff with full jitter.
- ``ResponseLostError``: maybe applied, so retried only when the operation is idempotent.
- Everything else (``CrmFault``, ``AuthenticationError``, ``InputError``, ``ProtocolError``, ``ConfigError``,
  and any non-crmload exception) propagates unchanged on the first failure.

When retries give up, ``RetryExhaustedError`` carries the last cause (``last``) and the attempt count.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from crmload.errors import (
    ConfigError,
    ConnectError,
    PortExhaustedError,
    ResponseLostError,
    RetryExhaustedError,
    ServerBusyError,
)

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "RETRY_CAUSES",
    "RetryAfterWait",
    "RetryPolicy",
    "RetryStats",
    "retry_cause",
    "retrying",
]

log = logging.getLogger(__name__)

#: Retry causes counted in ``RetryStats``, in the order summaries print them.
RETRY_CAUSES = ("connect", "port_exhausted", "busy", "response_lost")

RetryHook = Callable[[RetryCallState], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard to retry: attempts, a deadline, and the backoff between attempts.

    Args:
        max_attempts: attempts in all, the first included.
        deadline_s: give up rather than start a wait that would end more than this long after the first
            attempt began; None for no deadline.
        backoff_base_s: the first backoff window; it doubles per attempt up to ``backoff_max_s``.
        jitter: full jitter: wait a uniform random time in [0, window] (spreads workers apart).
        retry_after_max_s: the longest server Retry-After honoured.

    Example:
        >>> import dataclasses
        >>> dataclasses.replace(DEFAULT_RETRY_POLICY, max_attempts=3).max_attempts
        3
    """

    max_attempts: int = 8
    deadline_s: float | None = 600.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: bool = True
    retry_after_max_s: float = 300.0

    def __post_init__(self) -> None:
        n = self.max_attempts
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"RetryPolicy.max_attempts must be an int >= 1, got {n!r}")
        if self.deadline_s is not None and not _is_number(self.deadline_s, positive=True):
            raise ConfigError(f"RetryPolicy.deadline_s must be positive or None, got {self.deadline_s!r}")
        for name in ("backoff_base_s", "backoff_max_s", "retry_after_max_s"):
            if not _is_number(getattr(self, name), positive=False):
                raise ConfigError(f"RetryPolicy.{name} must be a number >= 0, got {getattr(self, name)!r}")
        if self.backoff_max_s < self.backoff_base_s:
            raise ConfigError("RetryPolicy.backoff_max_s must be >= backoff_base_s")

    def backoff_window(self, attempt: int) -> float:
        """The backoff cap after failed attempt ``attempt`` (1-based): base * 2**(attempt-1), capped."""
        exponent = min(attempt - 1, 64)  # 2**64 * base overflows nothing and is far past any cap
        return float(min(self.backoff_max_s, self.backoff_base_s * 2.0**exponent))


def _is_number(value: object, *, positive: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value > 0 if positive else value >= 0


DEFAULT_RETRY_POLICY = RetryPolicy()


def retry_cause(exc: BaseException, *, idempotent: bool) -> str | None:
    """The retry cause name for ``exc`` ("connect", "port_exhausted", "busy", "response_lost"), or None."""
    if isinstance(exc, PortExhaustedError):
        return "port_exhausted"
    if isinstance(exc, ConnectError):
        return "connect"
    if isinstance(exc, ServerBusyError):
        return "busy"
    if isinstance(exc, ResponseLostError) and idempotent:
        return "response_lost"
    return None


class RetryStats:
    """Thread-safe retry counts by cause, shared by every call of one client.

    Example:
        >>> stats = RetryStats()
        >>> stats.record("busy")
        >>> stats.snapshot()["busy"], stats.total
        (1, 1)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(RETRY_CAUSES, 0)
        self._gave_up = 0

    def record(self, cause: str) -> None:
        """Count one retry (a new attempt about to be made) for ``cause``."""
        with self._lock:
            self._counts[cause] = self._counts.get(cause, 0) + 1

    def record_gave_up(self) -> None:
        """Count one operation whose retries were exhausted."""
        with self._lock:
            self._gave_up += 1

    @property
    def total(self) -> int:
        """All retries so far."""
        with self._lock:
            return sum(self._counts.values())

    @property
    def gave_up(self) -> int:
        """Operations that raised ``RetryExhaustedError``."""
        with self._lock:
            return self._gave_up

    def snapshot(self) -> dict[str, int]:
        """Counts by cause (every cause present, zero included)."""
        with self._lock:
            return dict(self._counts)


class RetryAfterWait(wait_base):
    """Wait for the server's Retry-After when it gave one, else exponential backoff with full jitter.

    Args:
        policy: caps and backoff shape.
        rng: the jitter source; inject ``random.Random(seed)`` for repeatable tests.
    """

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        # A private Random: seeding it in tests does not disturb the global one, and vice versa.
        self.rng = rng if rng is not None else random.Random()

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        retry_after = getattr(exc, "retry_after", None) if isinstance(exc, ServerBusyError) else None
        if retry_after is not None and retry_after >= 0:
            cap = self.policy.retry_after_max_s
            if retry_after > cap:
                # A misconfigured proxy or an HTTP-date far ahead must not park a run for hours unseen.
                log.warning(
                    "server asked to retry after %.0f s; waiting %.0f s (RetryPolicy.retry_after_max_s)",
                    retry_after,
                    cap,
                )
            return float(min(retry_after, cap))
        window = self.policy.backoff_window(retry_state.attempt_number)
        return self.rng.uniform(0.0, window) if self.policy.jitter else window


_STARTED_ATTR = "_crmload_started"


class _StopAtDeadline(stop_base):
    """Stop rather than start a wait that would end after the deadline, measured on the injected clock.

    tenacity's own ``stop_after_delay``/``stop_before_delay`` read ``RetryCallState.seconds_since_start``,
    which tenacity 9 stamps with ``time.monotonic()`` directly (``RetryCallState.__init__`` and
    ``set_exception``), so a fake clock cannot drive them. ``retrying()`` stamps the start with the injected
    clock in a ``before`` hook instead, and this stop reads it back.
    """

    def __init__(self, deadline_s: float, clock: Callable[[], float]) -> None:
        self.deadline_s = deadline_s
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        now = self.clock()
        started: float | None = getattr(retry_state, _STARTED_ATTR, None)
        elapsed = 0.0 if started is None else now - started
        return elapsed + retry_state.upcoming_sleep > self.deadline_s


def retrying(
    policy: RetryPolicy | None = None,
    *,
    idempotent: bool,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: RetryHook | None = None,
    before_sleep: RetryHook | None = None,
    stats: RetryStats | None = None,
    rng: random.Random | None = None,
) -> Retrying:
    """Build the tenacity ``Retrying`` for one operation.

    Args:
        policy: attempts, deadline and backoff; ``DEFAULT_RETRY_POLICY`` when None.
        idempotent: whether a ``ResponseLostError`` may be retried (Update, Delete, Retrieve*, keyed Create).
        sleep, clock: injected time; tests pass a fake clock whose sleep advances it.
        on_retry: called with the state before each retry's wait (e.g. to tell the limiter it was busy).
        before_sleep: a second hook, passed the same state, run after ``on_retry``.
        stats: counts each retry by cause, and each give-up.
        rng: the jitter source.

    Example:
        >>> from crmload.errors import ConnectError
        >>> calls, slept = [], []
        >>> def flaky():
        ...     calls.append(1)
        ...     if len(calls) < 3:
        ...         raise ConnectError("refused")
        ...     return "ok"
        >>> retrying(RetryPolicy(jitter=False), idempotent=False, sleep=slept.append)(flaky), slept
        ('ok', [0.5, 1.0])
    """
    policy = policy if policy is not None else DEFAULT_RETRY_POLICY

    def retryable(exc: BaseException) -> bool:
        return retry_cause(exc, idempotent=idempotent) is not None

    def before(retry_state: RetryCallState) -> None:
        if retry_state.attempt_number == 1:
            setattr(retry_state, _STARTED_ATTR, clock())

    def announce(retry_state: RetryCallState) -> None:
        exc = _last_exception(retry_state)
        cause = retry_cause(exc, idempotent=idempotent) or "other"
        if stats is not None:
            stats.record(cause)
        log.info(
            "retrying after %s (attempt %d of %d, waiting %.3g s): %s",
            cause,
            retry_state.attempt_number,
            policy.max_attempts,
            retry_state.upcoming_sleep,
            exc,
        )
        if on_retry is not None:
            on_retry(retry_state)
        if before_sleep is not None:
            before_sleep(retry_state)

    def give_up(retry_state: RetryCallState) -> NoReturn:
        exc = _last_exception(retry_state)
        if stats is not None:
            stats.record_gave_up()
        n = retry_state.attempt_number
        raise RetryExhaustedError(
            f"gave up after {n} attempt{'s' if n != 1 else ''}; last error: {type(exc).__name__}: {exc}",
            last=exc,
            attempts=n,
        ) from exc

    stop: stop_base = stop_after_attempt(policy.max_attempts)
    if policy.deadline_s is not None:
        stop = stop | _StopAtDeadline(policy.deadline_s, clock)
    return Retrying(
        sleep=sleep,
        stop=stop,
        wait=RetryAfterWait(policy, rng),
        retry=retry_if_exception(retryable),
        before=before,
        before_sleep=announce,
        retry_error_callback=give_up,
    )


def _last_exception(retry_state: RetryCallState) -> BaseException:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    # tenacity only retries or gives up on failed outcomes here, so there is always an exception.
    assert exc is not None
    return exc

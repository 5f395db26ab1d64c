"""How many rows go into the loader's next batch (one ExecuteMultiple): a fixed number, or ``auto``.

``auto`` aims each request at a target server time (``BatchPolicy.target_s``, a few seconds), the way
DevPack4Dataverse's AdaptiveRequester and Microsoft's guidance do ("ramp up until you hit a limit"):
- it keeps a moving average of the server's time per record, from each clean answer;
- after a clean answer (no busy answer, no lost answer) the next size is ``target_s / time per record``, but
  at most ``growth`` times the size just sent, so it grows step by step while answers come back fast;
- a busy/throttling answer halves the size; a lost answer (a read timeout, a reset) halves it too, and
  growth then pauses for ``cooldown`` clean answers, so it does not climb straight back into the wall
  (a busy answer has its own wait, Retry-After, so the size may grow again at once);
- it never exceeds ``ceiling()``: the smallest of the policy's ``maximum``, the dialect's largest batch and
  the client's ``batch_limit`` (which a MaxBatchSize fault or a lost answer lowers).

Feedback is counted, not timed here: the caller reports each batch's size and the server time its answers
took (``CrmClient.call_trace``), so the controller is pure and its decisions are unit-tested step by step.

Example:
    >>> sizer = AutoSizer(BatchPolicy(target_s=2.0, start=100), ceiling=lambda: 1000)
    >>> sizer.size()
    100
    >>> sizer.record(Feedback(size=100, server_s=0.5))  # 5 ms a record: 400 would take 2 s, capped at x2
    >>> sizer.size()
    200
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from crmload.errors import ConfigError

__all__ = [
    "DEFAULT_BATCH_POLICY",
    "AutoSizer",
    "BatchPolicy",
    "Feedback",
    "FixedSizer",
    "Sizer",
    "parse_size",
    "sizer_for",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchPolicy:
    """The ``auto`` batch size's aims and bounds.

    Args:
        target_s: server time each request should take. A few seconds: long enough that the per-request
            cost (a round trip, the envelope) is small beside the records' own, short enough that a timeout
            or a lost answer costs little and the limiter still paces requests.
        start: the first size, before any answer. 250 records at about 10 ms each is near the target.
        maximum: never more than this (the dialect's and the client's limits apply too).
        growth: at most this factor from one size to the next while answers are fast and clean.
        smoothing: the weight of the newest answer in the moving average of time per record.
        cooldown: clean answers after a lost answer before the size may grow again.
    """

    target_s: float = 3.0
    start: int = 250
    maximum: int = 1000
    growth: float = 2.0
    smoothing: float = 0.5
    cooldown: int = 3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_s) and self.target_s > 0):
            raise ConfigError(f"the batch target time must be positive seconds, not {self.target_s!r}")
        for name in ("start", "maximum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"batch {name} must be an integer >= 1, not {value!r}")
        if not self.growth > 1.0:
            raise ConfigError(f"batch growth must be above 1, not {self.growth!r}")
        if not 0.0 < self.smoothing <= 1.0:
            raise ConfigError(f"batch smoothing must be in (0, 1], not {self.smoothing!r}")
        if self.cooldown < 0:
            raise ConfigError(f"batch cooldown must be >= 0, not {self.cooldown!r}")


DEFAULT_BATCH_POLICY = BatchPolicy()


@dataclass(frozen=True, slots=True)
class Feedback:
    """What one batch's call showed: its size, the server time of its answered requests, and trouble.

    ``server_s`` is None when unknown (then the batch teaches nothing about speed). ``busy`` counts
    busy/throttling answers the client retried through, ``lost`` answers lost (read timeouts, resets).
    """

    size: int
    server_s: float | None = None
    busy: int = 0
    lost: int = 0
    #: ``Sizer.epoch`` when the batch's size was taken: trouble from a batch sent before the last cut is
    #: the same trouble, not news (workers answer out of order), so it cuts once, not once per batch.
    epoch: int = 0


class Sizer(Protocol):
    """What the loader asks: the next batch's size, and how the last one went."""

    def size(self) -> int: ...
    def record(self, feedback: Feedback) -> None: ...

    @property
    def epoch(self) -> int: ...

    @property
    def adaptive(self) -> bool: ...

    @property
    def label(self) -> str: ...


class FixedSizer:
    """Always ``n`` rows (CRM 4.0's 1, or ``--batch-size N``), but never above ``ceiling()``."""

    def __init__(self, n: int, *, ceiling: Callable[[], int] = lambda: 1 << 30) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"the batch size must be an integer >= 1 or 'auto', not {n!r}")
        self._n = n
        self._ceiling = ceiling

    @property
    def label(self) -> str:
        return str(self._n)

    epoch = 0
    adaptive = False

    def size(self) -> int:
        return max(1, min(self._n, self._ceiling()))

    def record(self, feedback: Feedback) -> None:
        """A fixed size learns nothing (the client's batch limit still caps it)."""


class AutoSizer:
    """The adaptive size (see the module docstring). Thread-safe: workers ask and report concurrently."""

    def __init__(self, policy: BatchPolicy = DEFAULT_BATCH_POLICY, *, ceiling: Callable[[], int]) -> None:
        self.policy = policy
        self._ceiling = ceiling
        self._lock = threading.Lock()
        self._size = float(policy.start)
        self._per_record: float | None = None  # moving average, seconds of server time per record
        self._cooldown = 0
        self._epoch = 0  # cuts so far
        #: Every decision as (reason, new size): what the tests and the summary can count.
        self.decisions: list[tuple[str, int]] = []

    adaptive = True

    @property
    def label(self) -> str:
        return "auto"

    @property
    def epoch(self) -> int:
        """Cuts so far; give it back in ``Feedback.epoch``."""
        return self._epoch

    def _cap(self) -> int:
        return max(1, min(self.policy.maximum, self._ceiling()))

    def size(self) -> int:
        with self._lock:
            return max(1, min(int(self._size), self._cap()))

    def record(self, feedback: Feedback) -> None:
        with self._lock:
            sent = max(1, feedback.size)
            if feedback.lost or feedback.busy:
                if feedback.epoch < self._epoch:
                    return  # sent before the last cut: that cut answered this trouble already
                self._epoch += 1
                self._size = max(1.0, min(self._size, sent) / 2)
                if feedback.lost:
                    self._cooldown = self.policy.cooldown
                self._decide("lost" if feedback.lost else "busy")
                return
            if feedback.server_s is None:
                return
            sample = max(feedback.server_s, 0.0) / sent
            alpha = self.policy.smoothing
            self._per_record = (
                sample if self._per_record is None else alpha * sample + (1 - alpha) * self._per_record
            )
            ideal = self.policy.target_s / self._per_record if self._per_record > 0 else math.inf
            if self._cooldown > 0:
                self._cooldown -= 1
                ideal = min(ideal, self._size)  # shrink if slow, but no growth yet
            # Grow from the size just sent; a short batch (the input's tail) does not pull the size down.
            before = self._size
            self._size = max(1.0, min(ideal, max(self._size, sent * self.policy.growth), float(self._cap())))
            self._decide("grow" if self._size > before else "shrink" if self._size < before else "hold")

    def _decide(self, reason: str) -> None:
        self._size = min(self._size, float(self._cap()))
        if len(self.decisions) < 10_000:
            self.decisions.append((reason, int(self._size)))


def parse_size(text: str | int) -> int | str:
    """``--batch-size``: ``auto`` or a whole number >= 1."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    elif isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    else:
        try:
            value = int(str(text))
        except ValueError:
            raise ConfigError(f"the batch size must be 'auto' or a whole number >= 1, not {text!r}") from None
    if value < 1:
        raise ConfigError(f"the batch size must be 'auto' or a whole number >= 1, not {value}")
    return value


def sizer_for(client: Any, size: int | str, policy: BatchPolicy, *, dry_run: bool = False) -> Sizer:
    """The batch size for ``client``: ``auto`` adapts where the endpoint has batches; CRM 4.0 sends 1."""
    caps = getattr(client, "capabilities", None)
    largest = int(getattr(caps, "max_batch", 1)) if caps is not None and not dry_run else 1

    def ceiling() -> int:
        return max(1, min(largest, int(getattr(client, "batch_limit", largest))))

    if size == "auto":
        return AutoSizer(policy, ceiling=ceiling) if largest > 1 else FixedSizer(1)
    assert isinstance(size, int)
    if size > largest and not dry_run:
        endpoint = getattr(client, "endpoint", "this")
        raise ConfigError(
            f"batch size {size} is more than the {endpoint} endpoint takes in one request ({largest})"
            + ("; CRM 4.0 has no batches: use 1 or auto" if largest == 1 else "")
        )
    return FixedSizer(size, ceiling=ceiling)

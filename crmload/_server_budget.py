"""Keeps one client's calls under the server's service-protection limits (``crmload.server_limits``).

Every call passes ``enter(items)`` before it is sent and ``leave(...)`` when it is over. The budget mirrors
the server's own sliding-window count, from the client's side, and holds a call back while:

- **concurrency**: as many calls are in flight as ``concurrent`` allows (or ``x-ms-dop-hint``, if lower);
- **requests**: the window already holds ``requests`` calls (those answered in the last ``window_s``, plus
  those in flight);
- **pace**: inside the window, calls and execution seconds are paced at the budget's own rate
  (``requests / window_s``, ``margin x exec_s / window_s``), a twentieth of a window allowed at once, so the
  window does not fill in one burst and then stand idle until that burst leaves it;
- **execution time**: the window's server time (answered calls: their latency, an upper bound of what the
  server spent) plus the estimates of the calls in flight (items x the per-record server time observed so
  far) has reached ``margin`` x ``exec_s``. The server admits a request on the work that has finished in its
  window (the call that crosses the line runs in full; the fault comes only after the window was exceeded),
  and that is at most what this sum holds, so the call may go even if its own time will cross the line. If
  a fault still comes at a limit already kept, the budget turns strict: this call's own estimate counts too.
  Until the first answer teaches the per-record time, one call goes alone (slow start).

The client's count is never below the server's (a call counts from before it is sent until after its answer,
and for at least as long), so a client alone on its identity is not throttled. When it is anyway (other
clients, a lower limit than assumed), ``on_throttle`` counts the fault by facet and lowers that facet's limit
to what the fault's documented message states (else to 90 % of what this client had in the window).

``max_batch()`` caps the batch size so that a batch in each concurrency slot holds at most half of its
share of the execution budget: batches stay small enough for the window to stay smooth.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from crmload.server_limits import FACETS, ServerLimits, limit_from_message

__all__ = ["Pass", "ServerBudget"]

log = logging.getLogger(__name__)

_DECAY = 0.7  # weight of the older answers in the per-record estimate


@dataclasses.dataclass(slots=True)
class Pass:
    """One admitted call: its item count and the execution seconds reserved for it (None: not yet known)."""

    items: int
    cost: float | None


class ServerBudget:
    """Holds one client's calls under ``ServerLimits``; thread-safe. ``limits=None``: count throttles only."""

    def __init__(
        self,
        limits: ServerLimits | None,
        *,
        margin: float = 0.95,
        workers: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        pace: bool = True,
    ) -> None:
        self._limits = limits
        self._workers = workers
        self._assumed = limits
        self._margin = margin
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._learned: dict[str, str] = {}
        self._tat_requests = -math.inf  # GCRA pacing of calls and of execution seconds (see _hold)
        self._tat_exec = -math.inf
        self._pace = pace
        # Strict: a fault at a limit already kept makes each call's own estimate count too.
        self._strict = False
        self._dop: int | None = None
        self._in_flight = 0
        self._unknown_in_flight = 0
        self._reserved = 0.0
        self._execs: collections.deque[tuple[float, float]] = collections.deque()
        self._exec_sum = 0.0
        self._answers: collections.deque[float] = collections.deque()
        # Decayed server seconds over decayed items, for single calls [0] and batches [1]: a single call's
        # time is mostly fixed overhead and would make a batch's estimate hundreds of times too high.
        self._num = [0.0, 0.0]
        self._den = [0.0, 0.0]
        self._throttles = dict.fromkeys(FACETS, 0)
        self._throttle_wait_s = 0.0
        self._holds = 0
        self._hold_s = 0.0
        self._requests = 0
        self._exec_total = 0.0
        self._first: float | None = None
        self._last = 0.0
        self._area = 0.0  # in-flight calls integrated over time
        self._peak = {"requests": 0.0, "execution_time": 0.0, "concurrency": 0.0}

    @property
    def active(self) -> bool:
        """True when calls are held under limits (False: limits off, throttles are only counted)."""
        return self._limits is not None

    @property
    def limits(self) -> ServerLimits | None:
        """The limits in force now (lowered by faults that named a lower one); None when off."""
        return self._limits

    # --- the gate -------------------------------------------------------------------------------------------

    def enter(self, items: int = 1) -> Pass:
        """Wait until a call of ``items`` records fits the budget, then count it in flight.

        A wait for a call to end is a wait on the condition (``leave`` wakes it); a wait for the window to
        drain is the injected ``sleep``, outside the lock, so tests on a fake clock see the schedule.
        """
        held_since: float | None = None
        while True:
            with self._cond:
                now = self._clock()
                if self._first is None:
                    self._first = self._last = now
                per_record = self._per_record(items)
                cost = None if per_record is None else items * per_record
                wait = None if self._limits is None else self._hold(now, cost)
                if wait is None:
                    return self._admit(now, items, cost, held_since)
                if held_since is None:
                    held_since = now
                    self._holds += 1
                if math.isinf(wait):
                    self._cond.wait(1.0)  # woken by a leave; the timeout only re-checks
                    continue
            self._sleep(max(wait, 0.001))

    def _admit(self, now: float, items: int, cost: float | None, held_since: float | None) -> Pass:
        limits = self._limits
        if limits is not None:
            self._tat_requests = max(self._tat_requests, now) + limits.window_s / limits.requests
            if cost is not None:
                rate = self._margin * limits.exec_s / limits.window_s
                self._tat_exec = max(self._tat_exec, now) + cost / rate
        if held_since is not None:
            self._hold_s += now - held_since
        self._tick(now)
        self._in_flight += 1
        self._peak["concurrency"] = max(self._peak["concurrency"], self._in_flight)
        if cost is None:
            self._unknown_in_flight += 1
        else:
            self._reserved += cost
        return Pass(items, cost)

    def _hold(self, now: float, cost: float | None) -> float | None:
        """None when a call may start now; else how long to wait before asking again (inf: until a leave)."""
        limits = self._limits
        assert limits is not None
        self._expire(now, limits.window_s)
        if self._in_flight >= self._cap(limits) or self._unknown_in_flight:
            return math.inf
        if cost is None and self._in_flight:
            return math.inf  # slow start: the first call teaches the per-record time
        edge = now - limits.window_s
        waits = [0.0]
        if len(self._answers) + self._in_flight >= limits.requests:
            waits.append(self._answers[0] - edge if self._answers else math.inf)
        # The server has counted at most what finished plus what is in flight (its answer may be on the
        # way), so that sum must stay under the line; strict: this call's own estimate too.
        used = self._exec_sum + self._reserved
        own = (cost or 0.0) if self._strict else 0.0
        if used > 0 and used + own >= self._margin * limits.exec_s:
            waits.append(self._execs[0][0] - edge if self._execs else math.inf)
        # Paced inside the window: a twentieth of it at once, then the budget's own rate, so a sliding window
        # that filled in one burst does not empty in one burst and leave the rest of the window idle.
        tolerance = limits.window_s / 20
        if self._pace:
            waits.append(self._tat_requests - tolerance - now)
            if cost is not None:
                waits.append(self._tat_exec - tolerance - now)
        wait = max(waits)
        return wait if wait > 0 else None

    def load(self) -> tuple[float, float]:
        """(1 if a one-record call would be held now else 0, calls in flight): how busy this budget is."""
        with self._cond:
            if self._limits is None:
                return 0.0, float(self._in_flight)
            per_record = self._per_record(1)
            held = self._hold(self._clock(), per_record) is not None
            return (1.0 if held else 0.0), float(self._in_flight)

    def leave(self, ticket: Pass, server_s: float | None, *, ran: bool = True) -> None:
        """The call is over: ``server_s`` is its latency (None: answer lost); ``ran=False``: never ran."""
        with self._cond:
            now = self._clock()
            self._tick(now)
            self._in_flight -= 1
            if ticket.cost is None:
                self._unknown_in_flight -= 1
            else:
                self._reserved = max(0.0, self._reserved - ticket.cost)
            if ran:
                spent = server_s if server_s is not None else (ticket.cost or 0.0)
                self._execs.append((now, spent))
                self._exec_sum += spent
                self._answers.append(now)
                self._requests += 1
                self._exec_total += spent
                if server_s is not None:
                    kind = 1 if ticket.items > 1 else 0
                    self._num[kind] = _DECAY * self._num[kind] + server_s
                    self._den[kind] = _DECAY * self._den[kind] + ticket.items
                if self._limits is not None:
                    if ticket.cost is not None:  # the pace charged the estimate: settle it with what it took
                        rate = self._margin * self._limits.exec_s / self._limits.window_s
                        self._tat_exec += (spent - ticket.cost) / rate
                    self._expire(now, self._limits.window_s)
                    self._peak["requests"] = max(self._peak["requests"], len(self._answers))
                    self._peak["execution_time"] = max(self._peak["execution_time"], self._exec_sum)
            self._cond.notify_all()

    def _per_record(self, items: int = 2) -> float | None:
        """Server seconds a record, from batches for a batch (None until one answered: it goes alone)."""
        kind = 1 if items > 1 else 0
        if self._den[kind] > 0:
            return self._num[kind] / self._den[kind]
        return self._num[1] / self._den[1] if kind == 0 and self._den[1] > 0 else None

    def _expire(self, now: float, window_s: float) -> None:
        edge = now - window_s
        answers = self._answers
        while answers and answers[0] <= edge:
            answers.popleft()
        execs = self._execs
        while execs and execs[0][0] <= edge:
            self._exec_sum -= execs.popleft()[1]
        if not execs:
            self._exec_sum = 0.0

    def _tick(self, now: float) -> None:
        self._area += self._in_flight * max(0.0, now - self._last)
        self._last = max(self._last, now)

    # --- what the server says -------------------------------------------------------------------------------

    def on_throttle(self, facet: str, message: str, retry_after: float | None) -> None:
        """Count a service-protection fault; lower the facet's limit to what the fault says it is."""
        with self._cond:
            self._throttles[facet] = self._throttles.get(facet, 0) + 1
            self._throttle_wait_s += retry_after or 0.0
            if self._limits is not None:
                self._learn(facet, message)
            self._cond.notify_all()

    def _learn(self, facet: str, message: str) -> None:
        limits = self._limits
        assert limits is not None
        stated = limit_from_message(facet, message)
        window = limits.window_s
        if stated is not None:
            value, window = stated[0], stated[1] or limits.window_s
            source = "the fault's message"
        elif facet == "requests":
            value, source = max(1.0, 0.9 * len(self._answers)), "this client's window"
        elif facet == "execution_time":
            value, source = max(0.001, 0.9 * self._exec_sum), "this client's window"
        else:
            value, source = max(1.0, self._in_flight - 1.0), "this client's calls in flight"
        field = {"requests": "requests", "execution_time": "exec_s", "concurrency": "concurrent"}.get(facet)
        if field is None:
            return
        old = getattr(limits, field)
        new_value: float | int = int(value) if field != "exec_s" else value
        if new_value >= old and window == limits.window_s:
            if facet == "execution_time" and not self._strict:
                # Throttled at the limit we kept under: count the calls in flight against it too from now on.
                self._strict = True
                self._learned["execution_time_own_estimate"] = "a fault at the limit already kept"
                log.info("service protection (execution time): each call's own estimate counts from now on")
            return
        self._limits = dataclasses.replace(limits, **{field: min(old, new_value)}, window_s=window)
        self._learned[facet] = source
        log.info(
            "service protection (%s): now keeping under %s, from %s",
            facet.replace("_", " "),
            self._limits.describe(),
            source,
        )

    def dop_hint(self, value: str | None) -> None:
        """Honour the server's ``x-ms-dop-hint`` (recommended parallelism) as the concurrency cap."""
        if value is None:
            return
        try:
            hint = int(value.strip())
        except ValueError:
            return
        if hint >= 1 and hint != self._dop:
            with self._cond:
                self._dop = hint
                self._cond.notify_all()
            log.info("server recommends %d calls in parallel (x-ms-dop-hint): capping in-flight calls", hint)

    def max_batch(self) -> int | None:
        """The largest batch that keeps each concurrency slot under half its share of the execution budget."""
        limits, per_record = self._limits, self._per_record()
        if limits is None or not per_record:
            return None
        # The slots this client can fill: the server's cap, or fewer when it has fewer threads.
        slots = min(self._cap(limits), self._workers or limits.concurrent)
        return max(1, int(self._margin * limits.exec_s / (2 * slots * per_record)))

    def _cap(self, limits: ServerLimits) -> int:
        return limits.concurrent if self._dop is None else min(limits.concurrent, self._dop)

    # --- reporting ------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Limits, throttles by facet, and the share of each facet used (mean over the run, peak window)."""
        with self._cond:
            limits = self._limits
            now = self._clock()
            self._tick(now)
            elapsed = 0.0 if self._first is None else max(0.0, self._last - self._first)
            out: dict[str, Any] = {
                "limits": None if limits is None else limits.to_dict(),
                "assumed": None if self._assumed is None else self._assumed.to_dict(),
                "learned": dict(self._learned),
                "dop_hint": self._dop,
                "throttles": dict(self._throttles),
                "throttles_total": sum(self._throttles.values()),
                "throttle_wait_s": round(self._throttle_wait_s, 3),
                "holds": self._holds,
                "hold_s": round(self._hold_s, 3),
                "requests": self._requests,
                "exec_s": round(self._exec_total, 3),
                "per_record_s": self._per_record(),
                "elapsed_s": round(elapsed, 3),
                "share": None,
                "peak_share": None,
            }
            if limits is not None and elapsed > 0:
                windows = max(elapsed, limits.window_s) / limits.window_s
                cap = self._cap(limits)
                out["share"] = {
                    "requests": self._requests / (limits.requests * windows),
                    "execution_time": self._exec_total / (limits.exec_s * windows),
                    "concurrency": self._area / elapsed / cap,
                }
                out["peak_share"] = {
                    "requests": self._peak["requests"] / limits.requests,
                    "execution_time": self._peak["execution_time"] / limits.exec_s,
                    "concurrency": self._peak["concurrency"] / cap,
                }
            return out

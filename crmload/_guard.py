"""The always-on new-connection guard (private: import ``ConnectGuard`` from ``crmload.throttle``)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from crmload._bucket import Clock, Sleep, TokenBucket
from crmload.budget import DEFAULT_PORT_BUDGET, PortBudget
from crmload.errors import ConfigError

__all__ = ["ConnectGuard"]

# The guard's lines keep the name users configure for the budgets.
log = logging.getLogger("crmload.throttle")


class ConnectGuard:
    """Holds new connections per second under the port budget. Always on; call ``acquire()`` once per socket.

    The bucket runs at ``(ports - burst) / time_wait_s`` so that in any TIME_WAIT period at most ``ports``
    sockets are opened, burst included. ``burst`` lets a pool warm up (one socket per worker) without waiting;
    it is clamped to a quarter of the ports so a tiny budget stays meaningful.

    Example:
        >>> t = [0.0]
        >>> budget = PortBudget(ports=50, time_wait_s=5)
        >>> guard = ConnectGuard(budget, clock=lambda: t[0], sleep=lambda s: None)
        >>> guard.rate, guard.burst
        (8.4, 8)
    """

    def __init__(
        self,
        budget: PortBudget | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        *,
        burst: int = 8,
    ) -> None:
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigError(f"ConnectGuard burst must be an int >= 1, got {burst!r}")
        self._budget = budget = budget if budget is not None else DEFAULT_PORT_BUDGET
        burst = max(1, min(burst, budget.ports // 4))
        usable = budget.ports - burst if budget.ports > burst else budget.ports
        self._bucket = TokenBucket(usable / budget.time_wait_s, burst, clock, sleep)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._connections = 0
        self._waits = 0
        self._wait_s = 0.0

    @property
    def budget(self) -> PortBudget:
        """The port budget this guard enforces."""
        return self._budget

    @property
    def rate(self) -> float:
        """New connections per second, after the burst."""
        return self._bucket.rate

    @property
    def burst(self) -> int:
        """New connections that may open at once after an idle period."""
        return self._bucket.burst

    def acquire(self) -> float:
        """Wait until a new socket may be opened; returns the seconds waited."""
        now, slot = self._bucket.reserve()
        wait = max(slot - now, 0.0)
        if wait > 0:
            log.debug("connect guard: waiting %.3g s for the port budget", wait)
            self._sleep(wait)
        with self._lock:
            self._connections += 1
            if wait > 0:
                self._waits += 1
                self._wait_s += wait
        return wait

    def stats(self) -> dict[str, Any]:
        """Counters for the run summary: connections, waits, wait_s, and the enforced rate."""
        with self._lock:
            return {
                "connections": self._connections,
                "waits": self._waits,
                "wait_s": self._wait_s,
                "rate": self.rate,
                "burst": self.burst,
                "budget_per_second": self._budget.per_second,
            }

"""Integration helpers: network namespaces for the port-wall tests, and a virtual clock for schedules.

The mock server fixtures (``crm``, ``crm_factory``) live in ``tests/conftest.py``.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

# netns_helper sits in tests/, which is not a package; the benchmarks reuse it from there too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netns_helper import unavailable_reason

_NETNS_REASON: list[str | None] = []


@pytest.fixture
def netns_ok() -> None:
    """Skip the test unless network namespaces can be created here (root, Linux, iproute2)."""
    if not _NETNS_REASON:
        _NETNS_REASON.append(unavailable_reason())
    if _NETNS_REASON[0] is not None:
        pytest.skip(_NETNS_REASON[0])


class VirtualClock:
    """Time that moves only when someone sleeps: ``sleep(s)`` moves it to at least the sleeper's wake-up.

    Thread-safe. Records every sleep, so tests can assert the exact waits a client asked for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(seconds, 0.0)


@pytest.fixture
def vclock() -> VirtualClock:
    """A fresh virtual clock."""
    return VirtualClock()

"""Counters the mock exposes: connections accepted/open/peak, requests by operation, injected faults by
kind."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

__all__ = ["Stats"]


class Stats:
    """Thread-safe counters; ``snapshot()`` returns the JSON-able dict behind ``/_mock/stats``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter; open connections are still open, so ``connections_open`` is kept."""
        with self._lock:
            open_now = getattr(self, "connections_open", 0)
            self.connections_accepted = 0
            self.connections_open = open_now
            self.connections_peak = open_now
            self.requests = 0
            self.requests_by_op: Counter[str] = Counter()
            self.faults_by_kind: Counter[str] = Counter()
            self.crm_faults_by_code: Counter[str] = Counter()

    def connection_opened(self) -> int:
        """Count an accepted connection; return how many are open now."""
        with self._lock:
            self.connections_accepted += 1
            self.connections_open += 1
            self.connections_peak = max(self.connections_peak, self.connections_open)
            return self.connections_open

    def connection_closed(self) -> None:
        """Count a closed connection."""
        with self._lock:
            self.connections_open -= 1

    def request_received(self) -> None:
        """Count one SOAP request received (busy, reset and faulted ones included)."""
        with self._lock:
            self.requests += 1

    def request(self, op: str, fault_code: str | None = None) -> None:
        """Count one SOAP request the protocol handled, and the CRM fault code it answered with, if any."""
        with self._lock:
            self.requests_by_op[op] += 1
            if fault_code:
                self.crm_faults_by_code[fault_code] += 1

    def fault(self, kind: str) -> None:
        """Count one injected or returned fault of ``kind``."""
        with self._lock:
            self.faults_by_kind[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        """Return the counters as a JSON-able dict."""
        with self._lock:
            return {
                "connections_accepted": self.connections_accepted,
                "connections_open": self.connections_open,
                "connections_peak": self.connections_peak,
                "requests": self.requests,
                "requests_by_op": dict(self.requests_by_op),
                "faults_by_kind": dict(self.faults_by_kind),
                "crm_faults_by_code": dict(self.crm_faults_by_code),
            }

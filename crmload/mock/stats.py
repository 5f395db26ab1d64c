"""Counters the mock exposes: connections accepted/open/peak, requests by operation and by dialect, items by
operation, a histogram of ExecuteMultiple batch sizes, injected faults by kind, and a timeline of requests
received (per 10 ms, on the mock's own clock) with the times of injected faults, so rate tests count what the
server saw instead of timing the clients."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from crmload.mock.protocol import SoapReply

__all__ = ["TIMELINE_BIN_S", "Stats"]

#: Width of one bin of ``requests_timeline``: any 1 s window is 100 consecutive bins.
TIMELINE_BIN_S = 0.01
#: Fault times kept per kind (the first ones): enough for tests, bounded for long runs.
_FAULT_TIMES_KEPT = 1000


class Stats:
    """Thread-safe counters; ``snapshot()`` returns the JSON-able dict behind ``/_mock/stats``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
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
            self.requests_by_dialect: dict[str, Counter[str]] = {}
            self.items_by_op: Counter[str] = Counter()
            self.item_faults_by_code: Counter[str] = Counter()
            self.batch_sizes: Counter[int] = Counter()
            self.requests_by_user: Counter[str] = Counter()
            self.http_features: Counter[str] = Counter()
            self.t0 = self._clock()
            self.timeline: Counter[int] = Counter()
            self.fault_times: dict[str, list[float]] = {}

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
        """Count one SOAP request received (busy, reset and faulted ones included), in the timeline too."""
        at = int((self._clock() - self.t0) / TIMELINE_BIN_S)
        with self._lock:
            self.requests += 1
            self.timeline[at] += 1

    def request(self, op: str, fault_code: str | None = None) -> None:
        """Count one SOAP request the protocol handled, and the CRM fault code it answered with, if any."""
        with self._lock:
            self.requests_by_op[op] += 1
            if fault_code:
                self.crm_faults_by_code[fault_code] += 1

    def reply(self, reply: SoapReply) -> None:
        """Count one handled SOAP request from its reply: operation, dialect, items run, batch size."""
        label = f"{reply.op}:{reply.message}" if reply.message else reply.op
        with self._lock:
            self.requests_by_op[reply.op] += 1
            if reply.fault_code:
                self.crm_faults_by_code[reply.fault_code] += 1
            self.requests_by_dialect.setdefault(reply.dialect, Counter())[label] += 1
            self.items_by_op.update(reply.items if reply.items is not None else {reply.op: 1})
            self.item_faults_by_code.update(reply.item_faults or {})
            if reply.batch_size is not None:
                self.batch_sizes[reply.batch_size] += 1
            if reply.user:
                self.requests_by_user[reply.user] += 1

    def fault(self, kind: str) -> None:
        """Count one injected or returned fault of ``kind``; keep when it happened (seconds since reset)."""
        at = self._clock() - self.t0
        with self._lock:
            self.faults_by_kind[kind] += 1
            times = self.fault_times.setdefault(kind, [])
            if len(times) < _FAULT_TIMES_KEPT:
                times.append(round(at, 4))

    def http(self, feature: str) -> None:
        """Count one use of an HTTP feature (``requests_chunked``, ``responses_gzip``)."""
        with self._lock:
            self.http_features[feature] += 1

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
                "requests_by_dialect": {d: dict(c) for d, c in sorted(self.requests_by_dialect.items())},
                "items_by_op": dict(self.items_by_op),
                "item_faults_by_code": dict(self.item_faults_by_code),
                "batch_sizes": {str(n): c for n, c in sorted(self.batch_sizes.items())},
                "requests_by_user": dict(self.requests_by_user),
                "http_features": dict(self.http_features),
                "requests_timeline": {
                    "bin_s": TIMELINE_BIN_S,
                    "counts": {str(k): n for k, n in sorted(self.timeline.items())},
                },
                "fault_times": {k: list(v) for k, v in self.fault_times.items()},
            }

"""Counting urllib3 connections: every socket the transport opens passes the connect guard and is counted.

urllib3 creates the socket in ``HTTPConnection._new_conn``; overriding it is the one place where a new TCP
connection (and so, later, one TIME_WAIT port) is born. The classes are bound to one ``ConnectionMeter``
per transport by :func:`counting_pool_classes`, as urllib3 builds connections from a class, not a factory,
and its pool key refuses unknown keyword arguments.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["ConnectionMeter", "GuardLike", "counting_pool_classes"]


class GuardLike(Protocol):
    """What the transport needs from ``crmload.throttle.ConnectGuard``: block until a new socket may open."""

    def acquire(self) -> float:
        """Wait for a new-connection token; return the seconds waited."""
        ...


class ConnectionMeter:
    """Thread-safe tally of connects: attempts, sockets opened, failures, and time waited on the guard."""

    def __init__(self, guard: GuardLike, clock: Callable[[], float] = time.monotonic) -> None:
        self._guard = guard
        self._clock = clock
        # On the guard's clock: just before the first guard call, and just after the latest one returned.
        # Every guard slot lies between them, so (attempts - burst) / (last - first) bounds the connect rate.
        self.first_connect_at: float | None = None
        self.last_connect_at: float | None = None
        self._lock = threading.Lock()
        self.connect_attempts = 0
        self.sockets_opened = 0
        self.connect_failures = 0
        self.guard_waits = 0
        self.guard_wait_s = 0.0

    def open_socket(self, new_conn: Callable[[], socket.socket]) -> socket.socket:
        """Pass the guard, then open the socket with ``new_conn`` and count the outcome."""
        # The guard runs before every connect attempt, including retries of a refused connect: a failed
        # attempt may still have consumed a local port.
        before = self._clock()
        with self._lock:
            if self.first_connect_at is None:
                self.first_connect_at = before
        waited = self._guard.acquire()
        after = self._clock()
        with self._lock:
            self.last_connect_at = after if self.last_connect_at is None else max(self.last_connect_at, after)
            self.connect_attempts += 1
            if waited > 0:
                self.guard_waits += 1
                self.guard_wait_s += waited
        try:
            sock = new_conn()
        except BaseException:
            with self._lock:
                self.connect_failures += 1
            raise
        with self._lock:
            self.sockets_opened += 1
        return sock

    def snapshot(self) -> dict[str, Any]:
        """Return the counters as a plain dict."""
        with self._lock:
            first, last = self.first_connect_at, self.last_connect_at
            return {
                "connect_window_s": 0.0 if first is None or last is None else last - first,
                "sockets_opened": self.sockets_opened,
                "connect_attempts": self.connect_attempts,
                "connect_failures": self.connect_failures,
                "guard_waits": self.guard_waits,
                "guard_wait_s": self.guard_wait_s,
            }


class CountingHTTPConnection(HTTPConnection):
    """An urllib3 HTTP connection whose socket creation is guarded and counted by ``meter``."""

    meter: ClassVar[ConnectionMeter]

    def _new_conn(self) -> socket.socket:
        return self.meter.open_socket(super()._new_conn)


class CountingHTTPSConnection(HTTPSConnection):
    """An urllib3 HTTPS connection whose socket creation is guarded and counted by ``meter``."""

    meter: ClassVar[ConnectionMeter]

    def _new_conn(self) -> socket.socket:
        return self.meter.open_socket(super()._new_conn)


def counting_pool_classes(meter: ConnectionMeter) -> dict[str, type[HTTPConnectionPool]]:
    """Return ``pool_classes_by_scheme`` for a PoolManager whose connections all report to ``meter``."""
    http_conn = type("CountingHTTPConnection", (CountingHTTPConnection,), {"meter": meter})
    https_conn = type("CountingHTTPSConnection", (CountingHTTPSConnection,), {"meter": meter})
    http_pool = type("CountingHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("CountingHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
    return {"http": http_pool, "https": https_pool}

"""Live progress: thread-safe counters, and a tqdm bar on stderr when stderr is a terminal.

The bar shows rows/s and, as postfix, done, rejected, retries and sockets; ``stats`` is a callable returning
the client's live numbers (retries, sockets), polled at most every half second.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """Counters for a run and an optional tqdm bar.

    Args:
        enabled: draw a bar (the CLI passes ``stderr.isatty() and not --no-progress``).
        total: rows expected, when known (None draws a bar without a total).
        stats: returns live client numbers: ``retries`` and ``sockets_opened``.
        stream: where the bar goes; stderr by default.
    """

    def __init__(
        self,
        *,
        enabled: bool = False,
        total: int | None = None,
        stats: Callable[[], Mapping[str, Any]] | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counts = {"done": 0, "rejected": 0, "in_doubt": 0}
        self._lock = threading.Lock()
        self._stats = stats
        self._clock = clock
        self._last = 0.0
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm  # noqa: PLC0415 - only a terminal needs the bar

            self._bar = tqdm(
                total=total, unit="rows", file=stream or sys.stderr, dynamic_ncols=True, mininterval=0.5
            )

    def add(self, state: str, n: int = 1) -> None:
        """Count ``n`` rows that ended in ``state`` and advance the bar."""
        with self._lock:
            self.counts[state] = self.counts.get(state, 0) + n
            if self._bar is None:
                return
            self._bar.update(n)
            now = self._clock()
            if now - self._last >= 0.5:
                self._last = now
                self._bar.set_postfix(self._postfix(), refresh=False)

    def _postfix(self) -> dict[str, Any]:
        post: dict[str, Any] = {"done": self.counts["done"], "rejected": self.counts["rejected"]}
        if self._stats is not None:
            try:
                live = self._stats()
            except Exception:
                live = {}
            post["retries"] = live.get("retries", 0)
            post["sockets"] = live.get("sockets_opened", 0)
        return post

    def close(self) -> None:
        """Finish the bar."""
        with self._lock:
            if self._bar is not None:
                self._bar.set_postfix(self._postfix(), refresh=True)
                self._bar.close()
                self._bar = None

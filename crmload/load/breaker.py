"""The run-level circuit breaker: a run of identical, row-independent faults stops the run instead of
rejecting every row.

A wrong organisation, a privilege the user lacks, an entity or attribute the server does not know: each fails
every row alike, and rejecting 2 million rows one by one helps nobody. The engine tells the breaker how each
sent row ended. A fault with a run-level code is *held* (the row stays pending) instead of rejected; when
``threshold`` sent rows in a row are held with the same code and message, the breaker trips: the run stops as
fatal and every held row stays pending, so ``--resume`` after the fix sends them. Anything else that ends a
row (a success, another fault) breaks the streak, and the held rows are handed back to be rejected as usual.

Which faults count (``crmload.errors.is_run_level``): the fault's code is in ``RUN_LEVEL_CODES``, or it is an
invalid-argument fault whose message names an unknown entity or attribute. Row-specific faults never trip
it: a bad value, a missing required field, a duplicate key, a record not found, a plug-in's refusal
(0x80040265) and the generic 0x80040216 "unexpected error".

Example:
    >>> b = Breaker(2)
    >>> from crmload.errors import PrivilegeDenied
    >>> fault = PrivilegeDenied("missing prvCreateAccount")
    >>> b.fault(fault, "row 1")
    ('hold', [])
    >>> b.fault(fault, "row 2")[0], b.tripped is not None
    ('trip', True)
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

from crmload.errors import RUN_LEVEL_CODES, CircuitOpenError, ConfigError, CrmFault, is_run_level

__all__ = ["DEFAULT_BREAKER_THRESHOLD", "RUN_LEVEL_CODES", "Breaker", "is_run_level"]

T = TypeVar("T")

#: Sent rows in a row failing alike before the run stops; the CLI's ``--breaker`` default.
DEFAULT_BREAKER_THRESHOLD = 20

#: What to fix, by code; the entity/attribute hints are chosen by message.
_HINTS = {
    "0x80040220": "grant the calling user the privilege it names, or check --org (CRM 4.0 refuses a wrong "
    "organisation this way too)",
    "0x80048306": "grant the calling user the access right it names",
    "0x8004a101": "the authentication ticket expired: sign in again",
}


_GUID = re.compile(r"\{?[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?")


def _same_for_every_row(message: str) -> str:
    """The message with record ids blanked: CRM's access-check faults name the record they refused."""
    return _GUID.sub("{id}", message)


def _hint(code: str, message: str) -> str:
    if code in _HINTS:
        return _HINTS[code]
    if "attribute" in message.lower():
        return "check the mapping (--map) and the CSV header: the server has no such attribute"
    return "check --entity: the server has no such entity"


@dataclass(frozen=True, slots=True)
class _Streak:
    code: str
    message: str


class Breaker(Generic[T]):
    """Counts consecutive identical run-level faults across workers and trips at ``threshold``.

    Thread-safe. Items are whatever the caller needs to reject a row later (held rows are handed back).
    "In a row" is in send order: the caller takes a ``ticket()`` as it sends a row and gives it back with the
    outcome. Workers answer out of order, so a success (or another fault) that was sent *before* the streak's
    first fault does not break it: it says nothing about the server since.

    Args:
        threshold: sent rows in a row that must fail alike to trip; 0 disables the breaker (every fault is
            rejected at once, as without it).
    """

    def __init__(self, threshold: int = DEFAULT_BREAKER_THRESHOLD) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise ConfigError(f"the breaker threshold must be an integer >= 0, got {threshold!r}")
        self.threshold = threshold
        self._lock = threading.Lock()
        self._tickets = itertools.count()
        self._streak: _Streak | None = None
        self._since = 0  # the lowest ticket in the streak
        self._held: list[T] = []
        self.tripped: CircuitOpenError | None = None

    def ticket(self) -> int:
        """Number one send, in send order (``next`` on an ``itertools.count`` is atomic under the GIL)."""
        return next(self._tickets)

    def tickets(self, n: int) -> list[int]:
        """Number the ``n`` rows of one batch, consecutively, in row order."""
        with self._lock:
            return [next(self._tickets) for _ in range(n)]

    @property
    def holding(self) -> bool:
        """True while rows are held (read without the lock: a success checks this on every row)."""
        return bool(self._held)

    def fault(self, exc: BaseException, item: T, ticket: int = 0) -> tuple[str, list[T]]:
        """Record a row that failed with ``exc``; return ``(action, rows to reject now)``.

        Actions: "reject" (reject this row as usual), "hold" (leave it pending for now), "trip" (this row
        completed the streak: stop the run; ``tripped`` holds the error), "pending" (the breaker has tripped
        on this very fault: leave the row pending).
        """
        run_level = self.threshold > 0 and isinstance(exc, CrmFault) and is_run_level(exc)
        if not run_level:
            return "reject", self._release(ticket)
        assert isinstance(exc, CrmFault)
        streak = _Streak((exc.code or "").lower(), _same_for_every_row(exc.message))
        with self._lock:
            if self.tripped is not None:
                return ("pending" if self._streak == streak else "reject"), []
            released: list[T] = []
            if streak != self._streak:
                if self._held and ticket < self._since:
                    return "reject", []  # an older fault of another kind: the row's own, the streak stands
                released, self._held = self._held, []
                self._streak, self._since = streak, ticket
            self._held.append(item)
            self._since = min(self._since, ticket)
            if len(self._held) < self.threshold:
                return "hold", released
            self.tripped = self._trip(streak, len(self._held))
            return "trip", released

    def success(self, ticket: int = 0) -> list[T]:
        """Record a row that went through; return held rows now to be rejected (when it broke the streak)."""
        if not self._held:
            return []
        return self._release(ticket)

    def drain(self) -> list[T]:
        """At the end of a run that did not trip: the held rows, to be rejected."""
        return self._release(None)

    def _release(self, ticket: int | None) -> list[T]:
        """End the streak (unless tripped, or ``ticket`` was sent before it began); return its rows."""
        with self._lock:
            if self.tripped is not None or not self._held:
                return []
            if ticket is not None and ticket < self._since:
                return []
            released, self._held = self._held, []
            self._streak = None
            return released

    @staticmethod
    def _trip(streak: _Streak, count: int) -> CircuitOpenError:
        code = streak.code or "without a code"
        return CircuitOpenError(
            f"circuit breaker: {count} sent rows in a row failed with the same fault {code} "
            f"({streak.message!r}); it is not about the rows, so they stay pending: "
            f"{_hint(streak.code, streak.message)}, then run again with --resume",
            code=streak.code or None,
            count=count,
            fault=streak.message,
        )

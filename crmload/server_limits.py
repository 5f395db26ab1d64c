"""The server's budget: the service-protection limits of the Organization service, known up front.

Dataverse counts, per user and per web server, over a sliding window (300 s): requests (6,000), combined
execution time (20 minutes) and concurrent requests (52). Past a limit every call faults with a Retry-After,
and calls sent during the penalty lengthen it. ``ServerLimits`` states those limits; ``CrmClient`` keeps every
call of one identity under them (``crmload._server_budget``): in-flight calls under ``concurrent``, calls per
window under ``requests``, and batch size x per-record server time under ``exec_s``. The Organization
service gets ``DEFAULT_SERVER_LIMITS`` unless told otherwise; a service-protection fault that names a lower
limit lowers it for the rest of the run.

Example:
    >>> ServerLimits.parse("200/4/8/10")
    ServerLimits(requests=200, exec_s=4.0, concurrent=8, window_s=10.0)
    >>> ServerLimits.parse("off") is None
    True
    >>> DEFAULT_SERVER_LIMITS.describe()
    '6000 requests, 1200 s execution, 52 concurrent per 300 s'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from crmload.errors import ConfigError

__all__ = ["DEFAULT_SERVER_LIMITS", "FACETS", "ServerLimits", "limit_from_message"]

#: The three facets, in the order summaries print them (the names of ``ServiceProtectionError.facet``).
FACETS = ("requests", "execution_time", "concurrency")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    """Service-protection limits per identity: requests and execution seconds per window, calls in flight.

    Args:
        requests: requests per window (a batch counts as one).
        exec_s: combined server execution seconds per window (a batch counts in full).
        concurrent: requests in flight at once.
        window_s: the sliding window, in seconds.
    """

    requests: int = 6000
    exec_s: float = 1200.0
    concurrent: int = 52
    window_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("requests", "concurrent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ServerLimits.{name} must be an int >= 1, got {value!r}")
        for name in ("exec_s", "window_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"ServerLimits.{name} must be a positive number, got {value!r}")

    @classmethod
    def parse(cls, text: str) -> ServerLimits | None:
        """Parse ``REQUESTS/EXEC_SECONDS/CONCURRENT[/WINDOW_S]``, ``default`` or ``off`` (None: no budget)."""
        if not isinstance(text, str):
            raise ConfigError(f"server limits must be text like '200/4/8/10', not {type(text).__name__}")
        value = text.strip().lower()
        if value in ("off", "none"):
            return None
        if value == "default":
            return DEFAULT_SERVER_LIMITS
        parts = value.split("/")
        if len(parts) not in (3, 4):
            raise ConfigError(
                f"server limits are REQUESTS/EXEC_SECONDS/CONCURRENT[/WINDOW_S] (e.g. 6000/1200/52/300), "
                f"'default' or 'off'; got {text!r}"
            )
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise ConfigError(f"server limits must be numbers, e.g. 200/4/8/10; got {text!r}") from None
        requests, exec_s, concurrent = numbers[:3]
        if requests != int(requests) or concurrent != int(concurrent):
            raise ConfigError(f"server limits: requests and concurrency are whole numbers; got {text!r}")
        window = numbers[3] if len(numbers) == 4 else DEFAULT_SERVER_LIMITS.window_s
        return cls(requests=int(requests), exec_s=exec_s, concurrent=int(concurrent), window_s=window)

    def describe(self) -> str:
        """Short human form: "6000 requests, 1200 s execution, 52 concurrent per 300 s"."""
        return (
            f"{self.requests} requests, {self.exec_s:g} s execution, {self.concurrent} concurrent "
            f"per {self.window_s:g} s"
        )

    def to_dict(self) -> dict[str, Any]:
        """The limits as JSON-ready data."""
        return {
            "requests": self.requests,
            "exec_s": self.exec_s,
            "concurrent": self.concurrent,
            "window_s": self.window_s,
        }


#: Dataverse's documented defaults: 6,000 requests, 20 minutes of execution, 52 concurrent per 300 s.
DEFAULT_SERVER_LIMITS = ServerLimits()

_NUMBER = r"(\d[\d,]*(?:\.\d+)?)"
_PATTERNS = {
    "requests": re.compile(
        rf"requests exceeded the limit of {_NUMBER} over time window of {_NUMBER} sec", re.I
    ),
    "execution_time": re.compile(
        rf"execution time .*?limit of {_NUMBER} milliseconds over time window of {_NUMBER} sec", re.I
    ),
    "concurrency": re.compile(rf"concurrent requests exceeded the limit of {_NUMBER}", re.I),
}


def limit_from_message(facet: str, message: str) -> tuple[float, float | None] | None:
    """The limit (execution time in seconds) and window a fault's documented wording states, or None.

    Example:
        >>> limit_from_message("concurrency", "Number of concurrent requests exceeded the limit of 52.")
        (52.0, None)
    """
    pattern = _PATTERNS.get(facet)
    found = pattern.search(message) if pattern is not None else None
    if found is None:
        return None
    numbers = [float(g.replace(",", "")) for g in found.groups()]
    value = numbers[0] / 1000 if facet == "execution_time" else numbers[0]
    window = numbers[1] if len(numbers) > 1 else None
    if value <= 0 or (window is not None and window <= 0):
        return None
    return value, window

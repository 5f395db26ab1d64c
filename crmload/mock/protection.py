"""Service-protection limits for the mock's Organization service, counted per user as Dataverse counts them.

Three facets over a sliding window (``window_s``, 300 s on the real service), per bearer identity:

- **requests**: more than ``requests`` admitted in the window faults -2147015902;
- **execution time**: once the execution seconds that finished in the window exceed ``exec_s``, the next
  request faults -2147015903 (a request is admitted on what the window holds when it arrives, so the one that
  crosses the line runs in full: the fault comes only after the window was exceeded, as on the real service);
- **concurrency**: a request that would make more than ``concurrent`` of the user's requests in flight faults
  -2147015898 at once.

Execution time is what the mock really spent on a request (parsing, the store, ``exec_ms_per_record``), not
the injected network latency. A fault hands out a penalty: Retry-After is the time until the window would
admit the request again (a ``penalty_step_s`` for concurrency); every request sent during a penalty faults
with the same facet and extends it by ``penalty_step_s``, as Microsoft warns ("sending more while throttled
lengthens the wait"). Throttled requests count in no budget.

Example::

    limits = ServiceLimits(requests=20, exec_s=0.5, concurrent=2, window_s=2)
    with MockCrm(limits=limits) as crm: ...
    crm.stats()["service_protection"]["users"]["default"]["throttles"]
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from crmload.errors import ConfigError
from crmload.mock.org_envelope import OrgFault, fault_envelope
from crmload.soap import ns

__all__ = [
    "CODES",
    "DEFAULT_SERVICE_LIMITS",
    "FACETS",
    "Protection",
    "ServiceLimits",
    "Throttled",
    "Ticket",
    "content_type",
    "fault_answer",
    "iso_duration",
]

FACETS = ("requests", "execution_time", "concurrency")
#: The documented fault codes (hex, as the mock's fault table keeps them; the wire carries them signed).
CODES = {"requests": "0x80072322", "execution_time": "0x80072321", "concurrency": "0x80072326"}
DEFAULT_WINDOW_S = 300.0
_KEEP_WINDOWS = 200  # per user; older windows are dropped from the stats


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceLimits:
    """The service-protection limits the mock enforces per user (Dataverse's defaults).

    Attributes:
        requests: requests admitted per window.
        exec_s: combined execution seconds per window.
        concurrent: requests in flight at once.
        window_s: the sliding window.
        dop_hint: when set, every Organization-service answer carries ``x-ms-dop-hint: N``.
        penalty_step_s: how much each request sent during a penalty extends it, and the Retry-After of a
            concurrency fault; None means ``window_s / 100`` (3 s on the real window).
    """

    requests: int = 6000
    exec_s: float = 1200.0
    concurrent: int = 52
    window_s: float = DEFAULT_WINDOW_S
    dop_hint: int | None = None
    penalty_step_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("requests", "concurrent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ServiceLimits.{name} must be an int >= 1, got {value!r}")
        for name in ("exec_s", "window_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"ServiceLimits.{name} must be a positive number, got {value!r}")
        if self.dop_hint is not None and (isinstance(self.dop_hint, bool) or self.dop_hint < 1):
            raise ConfigError(f"ServiceLimits.dop_hint must be >= 1 or None, got {self.dop_hint!r}")
        if self.penalty_step_s is not None and not 0 <= self.penalty_step_s < math.inf:
            raise ConfigError(f"ServiceLimits.penalty_step_s must be >= 0, got {self.penalty_step_s!r}")

    @property
    def step_s(self) -> float:
        """The penalty step in force."""
        return self.window_s / 100 if self.penalty_step_s is None else self.penalty_step_s

    @classmethod
    def parse(cls, text: str, *, window_s: float | None = None) -> ServiceLimits:
        """Parse ``REQUESTS/EXEC_SECONDS/CONCURRENT`` (the CLI's ``--limits``), e.g. ``200/4/8``."""
        parts = text.strip().split("/")
        if len(parts) != 3:
            raise ConfigError(f"limits are REQUESTS/EXEC_SECONDS/CONCURRENT, e.g. 6000/1200/52, got {text!r}")
        try:
            requests, exec_s, concurrent = int(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ConfigError(f"limits are whole/number/whole, e.g. 200/4/8, got {text!r}") from None
        window = DEFAULT_WINDOW_S if window_s is None else window_s
        return cls(requests=requests, exec_s=exec_s, concurrent=concurrent, window_s=window)

    def message(self, facet: str) -> str:
        """The service's own wording for a facet's fault."""
        if facet == "requests":
            return (
                f"Number of requests exceeded the limit of {self.requests} over time window of "
                f"{self.window_s:g} seconds."
            )
        if facet == "execution_time":
            ms = round(self.exec_s * 1000)
            return (
                f"Combined execution time of incoming requests exceeded limit of {ms:,} milliseconds over "
                f"time window of {self.window_s:g} seconds. Decrease number of concurrent requests or reduce "
                "the duration of requests and try again later."
            )
        return f"Number of concurrent requests exceeded the limit of {self.concurrent}."

    def to_dict(self) -> dict[str, Any]:
        """The limits as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceLimits:
        """Build limits from a dict (``POST /_mock/limits``); unknown keys are a ConfigError."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown limits keys: {sorted(unknown)}")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ConfigError(f"bad limits: {exc}") from exc


DEFAULT_SERVICE_LIMITS = ServiceLimits()


def iso_duration(seconds: float) -> str:
    """An xs:duration as a .NET TimeSpan serialises (``PT4M16.5S``); 7 fractional digits at most."""
    ticks = max(0, round(seconds * 10_000_000))
    hours, rest = divmod(ticks, 3600 * 10_000_000)
    minutes, rest = divmod(rest, 60 * 10_000_000)
    whole, frac = divmod(rest, 10_000_000)
    secs = f"{whole}.{frac:07d}".rstrip("0").rstrip(".") if frac else str(whole)
    out = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return out + (f"{secs}S" if secs != "0" or out == "PT" else "")


@dataclass(frozen=True, slots=True)
class Throttled:
    """A refused request: its facet, the fault code and message, and the wait it is told."""

    facet: str
    code: str
    message: str
    retry_after_s: float


def fault_answer(refused: Throttled, soap_ns: str) -> tuple[bytes, list[tuple[str, str]]]:
    """The fault's body (shaped like the real ``org-web_fault_*`` answers, Retry-After an ``e:duration`` in
    ``ErrorDetails``) and its HTTP headers (``Retry-After`` in whole seconds, rounded up, as HTTP wants)."""
    fault = OrgFault(
        refused.code,
        refused.message,
        kind="service_protection_" + refused.facet,
        details={"Retry-After": ("duration", iso_duration(refused.retry_after_s))},
    )
    header = str(max(1, math.ceil(refused.retry_after_s)))
    return fault_envelope(fault, soap_ns, ""), [("Retry-After", header)]


def content_type(soap_ns: str) -> str:
    """The answer's content type for the endpoint's SOAP version."""
    return "application/soap+xml; charset=utf-8" if soap_ns == ns.SOAP12_ENV else "text/xml; charset=utf-8"


@dataclass(slots=True)
class Ticket:
    """An admitted request; the server adds the execution time it spent, then releases it."""

    user: str
    started: float
    exec_s: float = 0.0
    released: bool = False


@dataclass(slots=True)
class _Window:
    start_s: float
    requests: int = 0
    exec_s: float = 0.0
    peak_concurrency: int = 0


@dataclass(slots=True)
class _User:
    first: float
    arrivals: deque[float] = field(default_factory=deque)
    execs: deque[tuple[float, float]] = field(default_factory=deque)
    exec_sum: float = 0.0
    in_flight: int = 0
    penalty: dict[str, float] = field(default_factory=dict)  # facet -> until
    throttles: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FACETS, 0))
    penalty_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FACETS, 0.0))
    extensions: int = 0
    peak: dict[str, float] = field(default_factory=lambda: {"requests": 0, "exec_s": 0.0, "concurrency": 0})
    windows: deque[_Window] = field(default_factory=lambda: deque(maxlen=_KEEP_WINDOWS))


class Protection:
    """Admits or refuses each Organization-service request of a user; thread-safe, clock injected."""

    def __init__(self, limits: ServiceLimits | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.limits = limits
        self._users: dict[str, _User] = {}

    def configure(self, limits: ServiceLimits | None) -> None:
        """Switch limits (None: off) and forget every window, penalty and counter."""
        with self._lock:
            self.limits = limits
            self._users.clear()

    def reset(self) -> None:
        """Forget every window, penalty and counter; keep the limits."""
        with self._lock:
            self._users.clear()

    def admit(self, user: str) -> Ticket | Throttled | None:
        """Admit a request (a ``Ticket`` to release) or refuse it (``Throttled``); None: limits are off."""
        limits = self.limits
        if limits is None:
            return None
        with self._lock:
            now = self._clock()
            u = self._users.get(user)
            if u is None:
                u = self._users[user] = _User(first=now)
            self._expire(u, now, limits.window_s)
            refused = self._refuse(u, now, limits)
            if refused is not None:
                return refused
            u.arrivals.append(now)
            u.in_flight += 1
            win = self._window(u, now, limits.window_s)
            win.requests += 1
            win.peak_concurrency = max(win.peak_concurrency, u.in_flight)
            u.peak["requests"] = max(u.peak["requests"], len(u.arrivals))
            u.peak["concurrency"] = max(u.peak["concurrency"], u.in_flight)
            return Ticket(user, now)

    def release(self, ticket: Ticket | None) -> None:
        """The request's work is done (its answer is going out, or it was dropped): count its execution time
        and free its slot. A second release of the same ticket does nothing."""
        limits = self.limits
        if ticket is None or ticket.released:
            return
        with self._lock:
            ticket.released = True
            u = self._users.get(ticket.user)
            if u is None:  # reset while it ran
                return
            now = self._clock()
            u.in_flight = max(0, u.in_flight - 1)
            u.execs.append((now, ticket.exec_s))
            u.exec_sum += ticket.exec_s
            if limits is not None:
                self._expire(u, now, limits.window_s)
                self._window(u, now, limits.window_s).exec_s += ticket.exec_s
            u.peak["exec_s"] = max(u.peak["exec_s"], u.exec_sum)

    def _refuse(self, u: _User, now: float, limits: ServiceLimits) -> Throttled | None:
        step = limits.step_s
        active = {f: until for f, until in u.penalty.items() if until > now}
        if active:
            facet = max(active, key=lambda f: active[f])
            u.penalty[facet] = active[facet] + step
            u.penalty_s[facet] += step
            u.extensions += 1
            return self._fault(u, facet, u.penalty[facet] - now, limits)
        if u.in_flight >= limits.concurrent:
            return self._penalise(u, "concurrency", now, step, limits)
        if len(u.arrivals) >= limits.requests:
            return self._penalise(u, "requests", now, u.arrivals[0] + limits.window_s - now, limits)
        if u.exec_sum > limits.exec_s:
            # Wait until enough of the window's execution time has left it to be back at the limit.
            excess, until = u.exec_sum - limits.exec_s, now
            for finished, spent in u.execs:
                excess -= spent
                until = finished + limits.window_s
                if excess <= 0:
                    break
            return self._penalise(u, "execution_time", now, until - now, limits)
        return None

    def _penalise(self, u: _User, facet: str, now: float, wait: float, limits: ServiceLimits) -> Throttled:
        wait = max(wait, 0.001)
        u.penalty[facet] = now + wait
        u.penalty_s[facet] += wait
        return self._fault(u, facet, wait, limits)

    @staticmethod
    def _fault(u: _User, facet: str, wait: float, limits: ServiceLimits) -> Throttled:
        u.throttles[facet] += 1
        return Throttled(facet, CODES[facet], limits.message(facet), wait)

    @staticmethod
    def _expire(u: _User, now: float, window_s: float) -> None:
        edge = now - window_s
        arrivals = u.arrivals
        while arrivals and arrivals[0] <= edge:
            arrivals.popleft()
        execs = u.execs
        while execs and execs[0][0] <= edge:
            u.exec_sum -= execs.popleft()[1]
        if not execs:
            u.exec_sum = 0.0  # no float drift left behind

    @staticmethod
    def _window(u: _User, now: float, window_s: float) -> _Window:
        start = u.first + window_s * math.floor((now - u.first) / window_s)
        if not u.windows or u.windows[-1].start_s < start:
            u.windows.append(_Window(start_s=start))
        return u.windows[-1]

    def snapshot(self) -> dict[str, Any]:
        """Per user and facet: throttles, penalty seconds handed out, budget used per window, peaks."""
        limits = self.limits
        with self._lock:
            users = {}
            for name, u in sorted(self._users.items()):
                users[name] = {
                    "throttles": dict(u.throttles),
                    "throttles_total": sum(u.throttles.values()),
                    "penalty_s": {f: round(s, 6) for f, s in u.penalty_s.items()},
                    "penalty_extensions": u.extensions,
                    "in_flight": u.in_flight,
                    "peak": {k: round(v, 6) for k, v in u.peak.items()},
                    "windows": [
                        {
                            "start_s": round(w.start_s - u.first, 6),
                            "requests": w.requests,
                            "exec_s": round(w.exec_s, 6),
                            "peak_concurrency": w.peak_concurrency,
                        }
                        for w in u.windows
                    ],
                }
        return {"limits": None if limits is None else limits.to_dict(), "users": users}

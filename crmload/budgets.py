"""Where the call limiter keeps its state: in this process, or shared by many processes through Redis.

The limiter's algorithm (GCRA with run-time ``set_rate`` and ``pause_until``, see ``crmload._bucket``) does
not change; only where its few numbers live. A ``BudgetStore`` opens one ``Budget`` per budget key:

- ``LocalStore`` (the default) hands out a ``TokenBucket``: today's behaviour, nothing shared, no extra cost.
- ``RedisStore(url)`` (the ``crmload[redis]`` extra) keeps the state in Redis, each operation one atomic Lua
  script, so every process and host that uses the same key obeys one rate and one Retry-After pause.

The key is ``BudgetKey(url, identity)``: the server counts calls per endpoint and per user, so that is what is
shared. The new-connection guard is not here on purpose: it protects this host's ports and stays per host.

Example:
    >>> store = open_store(None)
    >>> budget = store.open(BudgetKey("http://crm/x", "alice"), rate=4.0, burst=1, clock=lambda: 0.0)
    >>> budget.reserve()
    (0.0, 0.0)
    >>> redact_url("redis://:hunter2@cache:6379/0")
    'redis://:***@cache:6379/0'
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from crmload._bucket import Clock, Sleep, TokenBucket
from crmload.errors import ConfigError

__all__ = [
    "ENV_BUDGET_STORE",
    "Budget",
    "BudgetKey",
    "BudgetStore",
    "LocalStore",
    "RedisStore",
    "open_store",
    "redact_url",
]

#: The environment variable the CLI reads when ``--budget-store`` is not given.
ENV_BUDGET_STORE = "CRMLOAD_BUDGET_STORE"


@dataclass(frozen=True, slots=True)
class BudgetKey:
    """What one shared budget counts: calls to one CRM endpoint (credentials stripped) by one identity."""

    url: str
    identity: str = ""

    @property
    def digest(self) -> str:
        """A short stable name for the key: stores name it by this, so no URL or user name is written out."""
        raw = f"{self.url}\0{self.identity}".encode()
        return hashlib.sha256(raw).hexdigest()[:24]


@runtime_checkable
class Budget(Protocol):
    """One budget's state, as the limiter uses it. ``TokenBucket`` is the in-process implementation.

    Times are readings of the limiter's clock; a shared store converts them to and from its own.
    """

    @property
    def rate(self) -> float:
        """Calls per second allowed now (the shared value, as last seen)."""
        ...

    def reserve(self) -> tuple[float, float]:
        """Book the next slot (the GCRA acquire): ``(now, slot)``; the caller may start at ``slot``."""
        ...

    def set_rate(self, rate: float) -> None:
        """Change the rate for every holder of this budget, from the next reservation on."""
        ...

    def pause_until(self, instant: float) -> None:
        """Hand out no slot before ``instant`` (a clock reading) to any holder; pauses only ever extend."""
        ...


class BudgetStore(Protocol):
    """Opens budgets by key. ``shared`` says whether other processes see the same state."""

    shared: bool

    def open(
        self,
        key: BudgetKey,
        *,
        rate: float | None,
        burst: int,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> Budget | None:
        """The budget for ``key`` at ``rate`` (None: unlimited, where only pauses apply)."""
        ...

    def describe(self) -> str:
        """Human text for logs and summaries, never a password."""
        ...


class LocalStore:
    """Today's behaviour: each limiter has its own ``TokenBucket``; nothing is shared or sent anywhere."""

    shared = False

    def open(
        self,
        key: BudgetKey,
        *,
        rate: float | None,
        burst: int,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> Budget | None:
        """A fresh bucket; None when unlimited (the limiter then keeps only its pause, lock-free)."""
        del key  # one process, one limiter: the key names nothing here
        return None if rate is None else TokenBucket(rate, burst, clock, sleep)

    def describe(self) -> str:
        return "local"

    def __repr__(self) -> str:
        return "LocalStore()"


def RedisStore(url: str, **options: Any) -> BudgetStore:
    """A budget store in Redis (needs ``pip install 'crmload[redis]'``); see ``crmload._redis_budget``."""
    from crmload._redis_budget import RedisBudgetStore  # noqa: PLC0415 - redis is an optional extra

    store: BudgetStore = RedisBudgetStore(url, **options)
    return store


def open_store(url: str | None) -> BudgetStore:
    """The store a CLI value names: None, "" or "local" is in-process; ``redis://`` or ``rediss://`` Redis."""
    if url is None or not url.strip() or url.strip().lower() == "local":
        return LocalStore()
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return RedisStore(url.strip())
    raise ConfigError(f"budget store must be 'local' or a redis://host:port/db URL, got {redact_url(url)!r}")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (user names stay: they say which account, not how)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    query = "&".join(
        f"{name}=***" if name.lower() == "password" else part
        for part in parts.query.split("&")
        for name in [part.partition("=")[0]]
    )
    netloc = parts.netloc
    if password:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

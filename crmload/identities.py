"""A pool of identities: several application users loading one organisation, each under its own server budget.

The Organization service counts service-protection limits per user, so N identities have N budgets.
``IdentityPool`` holds one ``CrmClient`` per identity (its own token source, connection pool, call limiter,
Retry-After pause and ``ServerBudget``) and sends each call through the identity that can take it now: not
paused by a Retry-After, not held by its budget, fewest calls in flight. When one identity is throttled, the
others carry on. It offers the client calls the loader uses, so ``Loader`` and ``crmload import --identity``
run on it unchanged; ``stats()`` sums the clients' counters and lists each identity's server budget.

Example:
    >>> pool = IdentityPool.open(url, {"app1": Bearer(t1), "app2": Bearer(t2)}, workers=8)  # doctest: +SKIP
    >>> pool.create_many("account", rows)                                                  # doctest: +SKIP
    >>> pool.stats()["identities"]["app2"]["throttles_total"]                              # doctest: +SKIP
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from crmload._client_stats import CallTrace
from crmload.client import CrmClient
from crmload.errors import ConfigError

__all__ = ["IdentityPool"]

#: Counters summed across identities; anything else is taken from the first client.
_SUMMED = (
    "calls",
    "requests",
    "sockets_opened",
    "connect_attempts",
    "retries",
    "retries_gave_up",
    "keyed_creates_confirmed",
    "limiter_waits",
    "limiter_wait_s",
    "limiter_wait_wall_s",
    "retry_after_pauses",
    "retry_after_pause_s",
    "guard_waits",
    "guard_wait_s",
    "bytes_sent",
    "bytes_received",
)


class IdentityPool:
    """One client per identity, used as one client; thread-safe.

    Args:
        clients: the identities' clients, by identity name (all for the same organisation and endpoint).
    """

    def __init__(self, clients: Mapping[str, CrmClient]) -> None:
        if len(clients) < 1:
            raise ConfigError("an identity pool needs at least one identity")
        urls = {c.url for c in clients.values()}
        if len(urls) != 1:
            raise ConfigError("every identity of a pool must use the same CRM URL")
        self._clients = dict(clients)
        self._order = list(self._clients.values())
        self._lock = threading.Lock()
        self._next = 0

    @classmethod
    def open(cls, url: str, auths: Mapping[str, Any], **options: Any) -> IdentityPool:
        """A client per ``auths`` entry (name -> auth object), each with the same ``options``."""
        clients: dict[str, CrmClient] = {}
        try:
            for name, auth in auths.items():
                clients[name] = CrmClient(url, auth=auth, identity=name, **options)
        except BaseException:
            for client in clients.values():
                client.close()
            raise
        return cls(clients)

    # --- picking an identity --------------------------------------------------------------------------------

    def _pick(self) -> CrmClient:
        """The identity that can take a call now; ties go round the pool."""
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self._order)
        best, best_key = self._order[start], (math.inf, math.inf, math.inf)
        for i in range(len(self._order)):
            client = self._order[(start + i) % len(self._order)]
            key = client._availability()
            if key < best_key:
                best, best_key = client, key
        return best

    def _each(self) -> Iterator[tuple[str, CrmClient]]:
        return iter(self._clients.items())

    # --- the client calls the loader and scripts use -------------------------------------------------------

    def create(self, entity: str, attrs: Mapping[str, object], *, id: Any = None) -> Any:
        """``CrmClient.create`` through the identity free now."""
        return self._pick().create(entity, attrs, id=id)

    def update(self, entity: str, id: Any, attrs: Mapping[str, object]) -> None:
        """``CrmClient.update`` through the identity free now."""
        self._pick().update(entity, id, attrs)

    def delete(self, entity: str, id: Any) -> None:
        """``CrmClient.delete`` through the identity free now."""
        self._pick().delete(entity, id)

    def retrieve(self, entity: str, id: Any, columns: Sequence[str] | None = None) -> dict[str, Any]:
        """``CrmClient.retrieve`` through the identity free now."""
        return self._pick().retrieve(entity, id, columns)

    def execute_multiple(self, requests: Sequence[Any], **options: Any) -> list[Any]:
        """``CrmClient.execute_multiple`` through the identity free now (one batch, one identity)."""
        return self._pick().execute_multiple(requests, **options)

    def create_many(self, entity: str, records: Any, ids: Any = None, **options: Any) -> list[Any]:
        """``CrmClient.create_many`` through the identity free now."""
        return self._pick().create_many(entity, records, ids, **options)

    def __getattr__(self, name: str) -> Any:
        # Reads and other calls (retrieve_multiple, upsert_many, fetch, ...) go through the identity free now.
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._order[0], name)
        return getattr(self._pick(), name) if callable(attr) else attr

    def preflight(self, entity: str | None = None) -> Any:
        """Check every identity (each token and its rights); the first identity's result."""
        results = [client.preflight(entity) for client in self._order]
        return results[0]

    @property
    def url(self) -> str:
        """The endpoint URL (the same for every identity)."""
        return self._order[0].url

    @property
    def batch_limit(self) -> int:
        """The smallest of the identities' batch limits."""
        return min(c.batch_limit for c in self._order)

    @property
    def identities(self) -> list[str]:
        """The identity names, in pool order."""
        return list(self._clients)

    def call_trace(self) -> CallTrace:
        """The calling thread's totals over every identity (see ``CrmClient.call_trace``)."""
        total = CallTrace()
        for client in self._order:
            t = client.call_trace()
            total = CallTrace(
                total.attempts + t.attempts,
                total.answered_s + t.answered_s,
                total.busy + t.busy,
                total.lost + t.lost,
            )
        return total

    def stats(self) -> dict[str, Any]:
        """The clients' counters summed, and each identity's ``server_budget`` under ``identities``."""
        each = {name: client.stats() for name, client in self._each()}
        first = next(iter(each.values()))
        out = dict(first)
        for key in _SUMMED:
            values = [s.get(key) for s in each.values()]
            if all(isinstance(v, (int, float)) for v in values):
                out[key] = sum(values)
        for key in ("retries_by_cause", "errors_by_type"):
            merged: dict[str, int] = {}
            for s in each.values():
                for k, v in (s.get(key) or {}).items():
                    merged[k] = merged.get(k, 0) + v
            out[key] = merged
        for key in ("latency_p50_s", "latency_p95_s"):
            seen = [float(v) for s in each.values() if (v := s.get(key)) is not None]
            out[key] = max(seen) if seen else None
        sockets = out.get("sockets_opened") or 0
        out["reuse_ratio"] = (out.get("requests", 0) / sockets) if sockets else None
        budgets = {name: s["server_budget"] for name, s in each.items()}
        out["server_budget"] = _merge_budgets(budgets)
        out["identities"] = budgets
        return out

    def close(self) -> None:
        """Close every identity's client. Idempotent."""
        for client in self._order:
            client.close()

    def __enter__(self) -> IdentityPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"IdentityPool({self.url!r}, identities={self.identities!r})"


def _merge_budgets(budgets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One ``server_budget`` for the summary: throttles summed, shares averaged over the identities."""
    first = dict(next(iter(budgets.values())))
    throttles: dict[str, int] = {}
    for b in budgets.values():
        for facet, n in (b.get("throttles") or {}).items():
            throttles[facet] = throttles.get(facet, 0) + n
    first["throttles"] = throttles
    first["throttles_total"] = sum(throttles.values())
    first["throttle_wait_s"] = sum(float(b.get("throttle_wait_s") or 0) for b in budgets.values())
    for key in ("share", "peak_share"):
        shares = [b.get(key) for b in budgets.values()]
        if all(isinstance(s, Mapping) for s in shares):
            facets = shares[0].keys()  # type: ignore[union-attr]
            first[key] = {f: sum(s[f] for s in shares) / len(shares) for f in facets}  # type: ignore[index]
    first["identities"] = len(budgets)
    return first

"""The server budget's lines in the run summary: throttles by facet and the share of each facet used.

A migration lead reads "execution time 91 % of budget, 0 throttles" and knows the run went as fast as the
server allows (``CrmClient.stats()["server_budget"]``, see ``crmload._server_budget``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crmload.server_limits import FACETS

__all__ = ["server_budget_lines", "server_budget_numbers"]

_WORDS = {"requests": "requests", "execution_time": "execution time", "concurrency": "concurrency"}


def server_budget_numbers(stats: object, identities: object = None) -> dict[str, Any] | None:
    """Reduce ``stats()["server_budget"]`` to the summary's numbers (shares in percent); None when absent.

    ``identities`` (an ``IdentityPool``'s ``stats()["identities"]``) adds the same numbers per identity.
    """
    if not isinstance(stats, Mapping):
        return None
    out = _numbers(stats)
    if isinstance(identities, Mapping):
        each = {str(name): b for name, b in identities.items() if isinstance(b, Mapping)}
        out["identities"] = {name: _numbers(b) for name, b in each.items()}
    return out


def _numbers(stats: Mapping[str, Any]) -> dict[str, Any]:
    share, peak, throttles = stats.get("share"), stats.get("peak_share"), stats.get("throttles")
    share = share if isinstance(share, Mapping) else None
    peak = peak if isinstance(peak, Mapping) else None
    throttles = throttles if isinstance(throttles, Mapping) else {}
    return {
        "limits": stats.get("limits"),
        "learned": dict(stats.get("learned") or {}),
        "dop_hint": stats.get("dop_hint"),
        "throttles": {f: int(throttles.get(f, 0)) for f in FACETS},
        "throttles_total": int(stats.get("throttles_total") or 0),
        "throttle_wait_s": float(stats.get("throttle_wait_s") or 0.0),
        "share_pct": None if share is None else {f: round(100 * float(share[f]), 1) for f in FACETS},
        "peak_share_pct": None if peak is None else {f: round(100 * float(peak[f]), 1) for f in FACETS},
    }


def server_budget_lines(numbers: object) -> list[str]:
    """The summary's text: the limits kept under, the share of each facet used, throttles by facet."""
    if not isinstance(numbers, Mapping):
        return []
    throttles = numbers.get("throttles") or {}
    total = int(numbers.get("throttles_total") or 0)
    by_facet = ", ".join(f"{_WORDS[f]} {n}" for f, n in throttles.items() if n)
    throttled = f"{total} throttle{'' if total == 1 else 's'}" + (f" ({by_facet})" if by_facet else "")
    limits = numbers.get("limits")
    if not isinstance(limits, Mapping):
        return [f"  server budget: off; {throttled}"] if total else []
    learned = numbers.get("learned") or {}
    head = (
        f"  server budget {limits['requests']} requests, {limits['exec_s']:g} s execution, "
        f"{limits['concurrent']} concurrent per {limits['window_s']:g} s"
        + (f" (lowered by faults: {', '.join(_WORDS.get(f, f) for f in learned)})" if learned else "")
        + (f", x-ms-dop-hint {numbers['dop_hint']}" if numbers.get("dop_hint") else "")
    )
    lines = [head, f"    {_used(numbers)}{throttled}"]
    for name, each in (numbers.get("identities") or {}).items():
        n = int(each.get("throttles_total") or 0)
        lines.append(f"    identity {name}: {_used(each)}{n} throttle{'' if n == 1 else 's'}")
    return lines


def _used(numbers: Mapping[str, Any]) -> str:
    share, peak = numbers.get("share_pct"), numbers.get("peak_share_pct")
    if not (isinstance(share, Mapping) and isinstance(peak, Mapping)):
        return ""
    used = ", ".join(f"{_WORDS[f]} {share[f]:.0f} % of budget (peak window {peak[f]:.0f} %)" for f in FACETS)
    return f"{used}; paused {float(numbers.get('throttle_wait_s') or 0):.1f} s; "

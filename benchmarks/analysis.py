"""Explanations computed from the results: why a goal was met or missed, in sentences built from the JSON.

Kept apart from ``report`` so the arithmetic behind each claim is in one place and every figure in the prose
still comes from a result file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Readable names for the boolean goals each scenario writes.
GOAL_TEXT = {
    ("port_wall", "crmload_all_stored"): "crmload stores every record through the port wall",
    ("throughput", "met_vs_zeep"): "crmload ≥ 2.5x zeep + Session (every worker count)",
    ("throughput", "met_vs_raw"): "crmload ≥ 0.85x raw floor (every worker count)",
    ("latency", "met"): "≥ 0.95x ideal calls/s up to 8 workers",
    ("limiter_precision", "met_mean"): "mean rate within ±2 % (16/s and 500/s)",
    ("limiter_precision", "met_peak"): "max calls in any 1 s ≤ rate + burst",
    ("broken_keepalive", "crmload_under_budget"): "crmload's new connections/s stay under the port budget",
    ("memory", "met_peak"): "peak RSS ≤ 100 MiB",
    ("memory", "flat"): "RSS flat (≤ 10 MiB growth over the second half)",
}


def goal_rows(docs: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """One row per boolean goal: scenario, goal text, met."""
    rows = []
    for name, doc in docs.items():
        for key, val in (doc.get("goals") or {}).items():
            if isinstance(val, bool):
                rows.append([name, GOAL_TEXT.get((name, key), key), val])
    return rows


def _med(doc: dict[str, Any], contender: str, workers: int, key: str) -> float | None:
    row = next((r for r in doc["summary"] if r["contender"] == contender and r["workers"] == workers), None)
    return row.get(key) if row else None


def throughput_analysis(doc: dict[str, Any]) -> str:
    """Explain the throughput ratios from CPU per record: what the floor allows, and what crmload adds."""
    lines = []
    for workers in sorted({r["workers"] for r in doc["summary"]}):
        raw, zeep, crm = (_med(doc, c, workers, "records_per_s") for c in ("raw", "zeep", "crmload"))
        cpu = {c: _med(doc, c, workers, "cpu_us_per_record") for c in ("raw", "zeep", "crmload")}
        if not (raw and zeep and crm and all(cpu.values())):
            continue
        lines.append(
            f"- {workers} worker(s): the raw floor itself reaches only {raw / zeep:.2f}x zeep, so no client "
            f"built on the same `requests`/`urllib3` transport can reach 2.5x here. crmload spends "
            f"{cpu['crmload'] - cpu['raw']:.0f} µs CPU/record more than the floor ({cpu['crmload']:.0f} vs "
            f"{cpu['raw']:.0f}: template codec, response parse, limiter, tenacity, stats); zeep spends "
            f"{cpu['zeep'] - cpu['raw']:.0f} µs more."
        )
    if not lines:
        return ""
    return "\n".join(
        [
            "Why the ratios are what they are (computed from the medians above). Client and mock share "
            "the machine's cores, and the floor's cost is dominated by `requests`/`urllib3`/`http.client` "
            "per call "
            "(see the profiles), which crmload inherits by design:",
            *lines,
        ]
    )


def broken_keepalive_note(doc: dict[str, Any]) -> str:
    """Say why naive survives a server that closes every connection, when it does."""
    naive = next((r for r in doc["summary"] if r["contender"] == "naive"), None)
    if not naive or naive.get("errors"):
        return ""
    return (
        f"naive got through all {naive['ok']:,.0f} calls here although it opened a connection per call at "
        f"{naive['new_conn_per_s']:.0f}/s: when the *server* closes first, TIME_WAIT lands on "
        "the server's side of each connection, not on the client's ephemeral port. The wall only bites a "
        "client that closes first (scenario 1) - but crmload cannot know which side will close, so its "
        "guard holds the rate anyway."
    )


def _flatten(obj: Any, prefix: str = "", depth: int = 0) -> Iterable[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k != "machine":
                yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
    elif isinstance(obj, list):
        if len(obj) <= 12 and depth < 4:
            for i, v in enumerate(obj):
                yield from _flatten(v, f"{prefix}[{i}]", depth + 1)
    elif isinstance(obj, (int, float, str, bool)) and not (isinstance(obj, str) and len(obj) > 120):
        yield prefix, obj


def scalar_rows(doc: dict[str, Any], limit: int = 60) -> list[tuple[str, Any]]:
    """The scalar numbers of any result document as ``(dotted key, value)`` rows, machine block left out."""
    return list(_flatten(doc))[:limit]

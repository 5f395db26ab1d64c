"""A plan's summary: a table per load (and per update pass), totals, and the equation per load and overall.

The per-load numbers are each load's ``Summary`` (the import's, from its journal); the client numbers are the
plan's one client's, for the whole run. ``exit_code`` follows import's rules over all loads: 130 interrupted,
1 fatal or unbalanced, 3 rejected or in-doubt rows, else 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from crmload.load.summary import Summary

__all__ = ["LoadResult", "PlanSummary", "merge_client"]

_COUNTS = ("read", "done", "rejected", "in_doubt", "pending")


@dataclass(slots=True)
class LoadResult:
    """One load's (or one update pass's) summary, with its plan label."""

    load: int
    label: str
    kind: str  # "create" (the load's own mode) or "links"
    summary: Summary
    passes: int = 1
    columns: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class PlanSummary:
    """What a plan run did (or, with ``dry_run``, would do)."""

    plan: str
    order: list[str]
    results: list[LoadResult]
    dry_run: bool = False
    duration_s: float = 0.0
    client: dict[str, Any] = field(default_factory=dict)
    state: str | None = None
    #: Dry run: lookups to keys that no row of the plan defines (trusted: they must exist in CRM).
    unresolved: int = 0
    unresolved_rows: list[dict[str, Any]] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    #: Ctrl-C stopped the plan, maybe between two loads.
    stopped: bool = False

    def _sum(self, kind: str | None) -> dict[str, int]:
        out = dict.fromkeys(_COUNTS, 0)
        for r in self.results:
            if kind is None or r.kind == kind:
                for name in _COUNTS:
                    out[name] += int(getattr(r.summary, name))
        return out

    @property
    def totals(self) -> dict[str, int]:
        """Source rows of every load (update passes excluded: they are not rows read)."""
        return self._sum("create")

    @property
    def balanced(self) -> bool:
        """The equation holds for every load, every update pass, and overall."""
        return all(r.summary.balanced for r in self.results)

    @property
    def fatal(self) -> str | None:
        """The first load's fatal error, labelled."""
        return next((f"{r.label}: {r.summary.fatal}" for r in self.results if r.summary.fatal), None)

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C stopped the plan."""
        return self.stopped or any(r.summary.interrupted for r in self.results)

    @property
    def exit_code(self) -> int:
        """import's exit codes, over the whole plan."""
        if self.interrupted:
            return 130
        if self.fatal or not self.balanced or self.not_run:
            return 1
        return 3 if any(r.summary.rejected or r.summary.in_doubt for r in self.results) else 0

    def equation(self) -> str:
        """The overall equation over every load's source rows."""
        t = self.totals
        held = t["done"] + t["rejected"] + t["in_doubt"] == t["read"]
        sign = "==" if held else "!="
        text = f"{t['done']} done + {t['rejected']} rejected + {t['in_doubt']} in doubt {sign} {t['read']}"
        text += " rows read"
        return text if held else f"{text} ({t['pending']} pending: run again with --resume)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: each load's ``Summary.to_dict()`` and label, totals, order, client numbers."""
        loads = [
            {"load": r.label, "kind": r.kind, "passes": r.passes, "columns": r.columns, **r.summary.to_dict()}
            for r in self.results
        ]
        links = self._sum("links")
        return {
            "command": "migrate",
            "plan": self.plan,
            "dry_run": self.dry_run,
            "order": self.order,
            "loads": loads,
            **self.totals,
            "links": {k: links[k] for k in ("read", "done", "rejected")},
            "equation": self.equation(),
            "balanced": self.balanced,
            "duration_s": self.duration_s,
            "records_per_s": round(
                sum(self.totals[k] for k in ("done", "rejected", "in_doubt")) / self.duration_s, 1
            )
            if self.duration_s
            else 0.0,
            "client": self.client,
            "state": self.state,
            "unresolved_lookups": self.unresolved,
            "unresolved_rows": self.unresolved_rows,
            "not_run": self.not_run,
            "fatal": self.fatal,
            "interrupted": self.interrupted,
            "exit_code": self.exit_code,
        }

    def to_json(self) -> str:
        """One JSON object on one line."""
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    def render(self) -> str:
        """The human summary: order, one table row per load, totals, then each load's details."""
        verb = "valid" if self.dry_run else "done"
        lines = [
            f"plan {self.plan}" + (" (dry run: nothing sent)" if self.dry_run else ""),
            *[f"  {o}" for o in self.order],
        ]
        head = (
            f"  {'load':<40} {'entity':<14} "
            + _cells("read", verb, "rejected", "in doubt", "pending")
            + " rows/s"
        )
        lines += ["", head]
        for r in self.results:
            s = r.summary
            name = r.label + (f" ({', '.join(r.columns)})" if r.columns else "")
            name = name if len(name) <= 40 else name[:37] + "..."
            cells = _cells(s.read, s.done, s.rejected, s.in_doubt, s.pending)
            lines.append(f"  {name:<40} {s.entity:<14} {cells} {s.records_per_s:>9.1f}")
        t = self.totals
        cells = _cells(*(t[k] for k in ("read", "done", "rejected", "in_doubt", "pending")))
        lines.append(f"  {'total (rows of the files)':<40} {'':<14} {cells}")
        lines += ["", "  per load:"] + [f"    {r.label}: {r.summary.equation()}" for r in self.results]
        lines.append(f"  overall: {self.equation()}")
        if not self.dry_run:
            rate = self.to_dict()["records_per_s"]
            lines.append(f"  {self.duration_s:.1f} s, {rate:.1f} records/s for the whole plan")
        c = self.client
        if c:
            lines.append(
                f"  one client: {c.get('calls', 0)} calls, {c.get('requests', 0)} requests over "
                f"{c.get('sockets_opened', 0)} sockets, {c.get('retries', 0)} retries"
            )
        if self.unresolved:
            lines.append(
                f"  {self.unresolved} lookups name keys no row of the plan defines "
                "(trusted: they must exist in CRM):"
            )
            lines += [
                f"    line {u['line']} of {u['file']}, column {u['column']!r}: {u['error']}"
                for u in self.unresolved_rows[:20]
            ]
        for name in self.not_run:
            lines.append(f"  not run: {name} (an earlier load stopped the plan)")
        for r in self.results:
            details = _details(r.summary)
            if details:
                lines.append(f"  {r.label}:")
                lines += [f"  {d}" for d in details]
        if self.state:
            lines.append(f"  state (journals): {self.state}")
        return "\n".join(lines)


def _cells(*values: object) -> str:
    return " ".join(f"{v:>8}" for v in values)


def _details(s: Summary) -> list[str]:
    """The lines of a load's own summary worth repeating under the table (files, findings, stops)."""
    keep = (
        "rejects:",
        "in doubt",
        "in-doubt",
        "would be rejected",
        "    line",
        "stopped:",
        "interrupted:",
        "warning:",
        "left from",
    )
    return [
        ln for ln in s.render().splitlines()[1:] if ln.strip().startswith(keep) or ln.startswith("    line")
    ]


def merge_client(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Client numbers of several passes: counters added, the rest (latencies, rate) from the last pass."""
    out = dict(parts[-1])
    for name in (
        "calls",
        "requests",
        "sockets_opened",
        "retries",
        "keyed_creates_confirmed",
        "connect_attempts",
    ):
        out[name] = sum(int(p.get(name) or 0) for p in parts)
    for name in ("limiter_wait_s", "limiter_wait_worker_sum_s", "retry_after_wait_s", "connect_guard_wait_s"):
        out[name] = round(sum(float(p.get(name) or 0.0) for p in parts), 3)
    sockets = out["sockets_opened"]
    out["reuse_ratio"] = round(out["requests"] / sockets, 1) if sockets else None
    return out

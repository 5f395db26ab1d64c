"""The run summary: counts from the journal, numbers from ``CrmClient.stats()``, text and JSON renderings.

The equation ``done + rejected + in doubt == rows read`` is printed in every summary; it fails only when a
fatal error stopped the run with rows still pending (then ``--resume`` finishes them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from crmload.load.budget_summary import server_budget_lines, server_budget_numbers

__all__ = ["Summary", "client_numbers", "stats_delta"]


def _pick(stats: Mapping[str, Any], *paths: str, default: Any = 0) -> Any:
    """Return the first present value among dotted ``paths`` in a nested stats dict."""
    for path in paths:
        node: Any = stats
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            return node
    return default


_COUNTERS = (
    "calls",
    "requests",
    "sockets_opened",
    "retries",
    "keyed_creates_confirmed",
    "limiter_wait_s",
    "limiter_wait_wall_s",
    "retry_after_pause_s",
    "guard_wait_s",
)


def stats_delta(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """``after`` with counters relative to ``before``: one run's share of a client used for several runs."""
    out = dict(after)
    for name in _COUNTERS:
        if isinstance(after.get(name), (int, float)) and isinstance(before.get(name), (int, float)):
            out[name] = after[name] - before[name]
    causes, old = after.get("retries_by_cause"), before.get("retries_by_cause")
    if isinstance(causes, Mapping) and isinstance(old, Mapping):
        out["retries_by_cause"] = {k: v - old.get(k, 0) for k, v in causes.items()}
    return out


def client_numbers(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Reduce ``CrmClient.stats()`` to the numbers the summary shows (latencies in ms)."""
    requests = int(_pick(stats, "requests", "calls"))
    sockets = int(_pick(stats, "sockets_opened"))
    retries = _pick(stats, "retries_by_cause", default={})
    p50 = _pick(stats, "latency_p50_s", default=None)
    p95 = _pick(stats, "latency_p95_s", default=None)
    return {
        "calls": int(_pick(stats, "calls")),
        "requests": requests,
        "sockets_opened": sockets,
        "reuse_ratio": round(requests / sockets, 1) if sockets else None,
        "retries": int(_pick(stats, "retries") or 0),
        "retries_by_cause": dict(retries) if isinstance(retries, Mapping) else {},
        "keyed_creates_confirmed": int(_pick(stats, "keyed_creates_confirmed")),
        "connect_attempts": int(_pick(stats, "connect_attempts")),
        # Wall time with at least one worker held back: what the run lost. The per-worker sum can exceed the
        # run's duration (4 workers waiting together), so it keeps a name that says what it adds up.
        "limiter_wait_s": round(float(_pick(stats, "limiter_wait_wall_s")), 3),
        "limiter_wait_worker_sum_s": round(float(_pick(stats, "limiter_wait_s")), 3),
        "retry_after_wait_s": round(float(_pick(stats, "retry_after_pause_s")), 3),
        "connect_guard_wait_s": round(float(_pick(stats, "guard_wait_s")), 3),
        "latency_p50_ms": None if p50 is None else round(float(p50) * 1000, 2),
        "latency_p95_ms": None if p95 is None else round(float(p95) * 1000, 2),
        "rate": _pick(stats, "current_rate", default=None),
        "errors_by_type": dict(_pick(stats, "errors_by_type", default={})),
        "server_budget": server_budget_numbers(
            _pick(stats, "server_budget", default=None), _pick(stats, "identities", default=None)
        ),
    }


@dataclass(slots=True, kw_only=True)
class Summary:
    """What a run did. ``exit_code`` follows the CLI's rules: 0 all done, 3 rejects or in doubt, 1 fatal,
    130 interrupted (Ctrl-C: the rows not sent stay pending for ``--resume``)."""

    entity: str
    mode: str
    dry_run: bool = False
    read: int = 0
    done: int = 0
    rejected: int = 0
    in_doubt: int = 0
    pending: int = 0
    already_present: int = 0
    skipped_from_journal: int = 0
    duration_s: float = 0.0
    records_per_s: float = 0.0
    client: dict[str, Any] = field(default_factory=dict)
    #: The first 1,000 in-doubt lines; ``in_doubt_lines_truncated`` says when there are more.
    in_doubt_lines: list[int] = field(default_factory=list)
    in_doubt_lines_truncated: bool = False
    #: The in-doubt rows with their columns (``FILE.in-doubt.csv``), and how many it lists.
    in_doubt_file: str | None = None
    in_doubt_file_rows: int = 0
    #: A dry run with no rejects file: every would-be reject as ``{line, column, phase, error}``.
    rejected_rows: list[dict[str, Any]] | None = None
    #: Output files an earlier run left that this run neither replaced nor added to.
    stale_files: list[str] = field(default_factory=list)
    journal: str | None = None
    rejects: str | None = None
    target: str | None = None
    fatal: str | None = None
    interrupted: bool = False
    #: The reader's line count check (``CsvSource.accounting()``); empty when not read from a file.
    source: dict[str, Any] = field(default_factory=dict)
    #: The batch size asked for ("auto" or a number), batches this run sent (one request each, unless the
    #: client split one), their mean and largest size, and the sent rows' faults by CRM code (else type).
    batch_size: str = "1"
    batches: int = 0
    mean_batch_size: float | None = None
    largest_batch: int = 0
    item_faults_by_code: dict[str, int] = field(default_factory=dict)
    #: ``--shard i/N`` (``load/shard.py``): this run's shard, and the rows it passed over as other shards'.
    shard: str | None = None
    other_shards: int = 0

    @property
    def balanced(self) -> bool:
        """True when every row read ended done, rejected or in doubt."""
        return self.done + self.rejected + self.in_doubt == self.read

    @property
    def exit_code(self) -> int:
        """0 all done, 3 rejected or in-doubt rows, 1 stopped by a fatal error, 130 interrupted (Ctrl-C)."""
        if self.interrupted:
            return 130
        if self.fatal or not self.balanced:
            return 1
        return 3 if self.rejected or self.in_doubt else 0

    def equation(self) -> str:
        """``done + rejected + in doubt == rows read``, with the numbers and whether it holds."""
        sign = "==" if self.balanced else "!="
        text = f"{self.done} done + {self.rejected} rejected + {self.in_doubt} in doubt {sign} {self.read}"
        text += " rows read"
        return text if self.balanced else f"{text} ({self.pending} pending: run again with --resume)"

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready data (what ``--json`` prints)."""
        out = asdict(self)
        if out["rejected_rows"] is None:
            del out["rejected_rows"]
        out["balanced"] = self.balanced
        out["equation"] = self.equation()
        out["exit_code"] = self.exit_code
        return out

    def to_json(self) -> str:
        """One JSON object on one line."""
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    def render(self) -> str:
        """The human summary, a few aligned lines."""
        c = self.client
        verb = "validated (dry run, nothing sent)" if self.dry_run else "done"
        lines = [
            f"{self.entity} ({self.mode}): {self.read} rows read, {self.done} {verb}, "
            f"{self.rejected} rejected, "
            f"{self.in_doubt} in doubt"
            + (f", {self.already_present} already present" if self.already_present else ""),
            f"  {self.equation()}",
            *self._shard_lines(),
            f"  {self.duration_s:.1f} s, {self.records_per_s:.1f} records/s",
        ]
        if not self.dry_run and c:
            causes = (
                ", ".join(f"{k} {v}" for k, v in sorted(c.get("retries_by_cause", {}).items()) if v) or "none"
            )
            sockets = c.get("sockets_opened", 0)
            lines += [
                f"  {c.get('calls', 0)} calls, {c.get('requests', 0)} requests over "
                f"{sockets} socket{'' if sockets == 1 else 's'} ({_reuse(c)})",
                f"  retries: {causes}",
                f"  {_held_back(c, self.duration_s)}",
                f"  latency p50 {_ms(c.get('latency_p50_ms'))}, p95 {_ms(c.get('latency_p95_ms'))}",
            ]
            lines += server_budget_lines(c.get("server_budget"))
        lines += self._batch_lines()
        if self.skipped_from_journal:
            lines.append(f"  {self.skipped_from_journal} rows already settled by an earlier run (journal)")
        if self.in_doubt_lines:
            shown = ", ".join(str(n) for n in self.in_doubt_lines[:20])
            total = max(self.in_doubt, len(self.in_doubt_lines))  # the list stops at 1,000
            more = "" if total <= 20 else f" and {total - 20} more"
            lines.append(f"  in doubt (may exist in CRM; check before importing again): lines {shown}{more}")
        if self.in_doubt_file:
            partial = "" if self.in_doubt_file_rows == self.in_doubt else f", {self.in_doubt_file_rows} rows"
            lines.append(f"  in-doubt rows with their columns: {self.in_doubt_file}{partial}")
        if self.rejected and self.rejects:
            lines.append(f"  rejects: {self.rejects} (fix and import it again as is)")
        lines += _findings(self.rejected_rows)
        lines += [f"  {name}: left from an earlier run, not this run's" for name in self.stale_files]
        if self.journal:
            lines.append(f"  journal: {self.journal}")
        if self.fatal:
            lines.append(f"  stopped: {self.fatal}")
        if self.interrupted:
            resume = "; --resume continues the run" if self.journal else " (no journal kept: run again)"
            lines.append(f"  interrupted: {self.pending} rows pending{resume}")
        return "\n".join(lines + _source_warnings(self.source))

    def _shard_lines(self) -> list[str]:
        if self.shard is None:
            return []
        return [f"  shard {self.shard}: {self.other_shards} rows of the input are other shards' (not read)"]

    def _batch_lines(self) -> list[str]:
        out = []
        if self.batches and (self.batch_size != "1" or self.largest_batch > 1):
            out.append(
                f"  {self.batches} batch{'' if self.batches == 1 else 'es'} sent (batch size "
                f"{self.batch_size}), mean {self.mean_batch_size} rows, largest {self.largest_batch}"
            )
        if self.item_faults_by_code:
            faults = ", ".join(f"{code} {n}" for code, n in sorted(self.item_faults_by_code.items()))
            out.append(f"  row faults by code: {faults}")
        return out


def _source_warnings(acc: Mapping[str, Any]) -> list[str]:
    """Lines that say why "rows read" may not be every record the file was meant to hold."""
    out = []
    spans = acc.get("joined_spans") or []
    if spans:
        shown = ", ".join(f"{a}-{b}" for a, b in spans[:10]) + (" ..." if len(spans) > 10 else "")
        out.append(
            f"  warning: lines {shown} were each read as ONE record and rejected: an unterminated quote may "
            "have joined rows (see crmload_raw in the rejects file)"
        )
    if acc.get("unaccounted_lines"):
        out.append(
            f"  warning: {acc['unaccounted_lines']} physical lines are not accounted for by any record"
        )
    return out


#: Would-be rejects a dry run's text summary shows; ``--json`` lists them all.
FINDINGS_SHOWN = 20


def _findings(rows: list[dict[str, Any]] | None) -> list[str]:
    if not rows:
        return []
    more = f" (first {FINDINGS_SHOWN} of {len(rows)}; --json lists all)" if len(rows) > FINDINGS_SHOWN else ""
    out = [f"  would be rejected{more}; --rejects PATH writes them with their columns:"]
    for r in rows[:FINDINGS_SHOWN]:
        column = f", column {r['column']!r}" if r.get("column") else ""
        out.append(f"    line {r['line']} ({r['phase']}{column}): {r['error']}")
    return out


def _reuse(c: Mapping[str, Any]) -> str:
    """How the requests shared their sockets, worded for what actually happened."""
    if c.get("sockets_opened"):
        return f"{c.get('reuse_ratio')} requests per socket"
    if c.get("requests"):
        return "connections kept from before"  # the client was used for an earlier run: its pool is warm
    attempts = c.get("connect_attempts") or 0
    if attempts:
        return f"no connection made: {attempts} connect attempt{'s' if attempts != 1 else ''} failed"
    return "nothing sent"


def _held_back(c: Mapping[str, Any], duration_s: float) -> str:
    """Limiter and Retry-After waits as wall time: how much of the run had workers held back."""
    limiter = float(c.get("limiter_wait_s") or 0.0)
    paused = float(c.get("retry_after_wait_s") or 0.0)
    share = f" ({100 * limiter / duration_s:.0f} % of the run)" if duration_s > 0 and limiter else ""
    return (
        f"workers held back by the rate limiter {limiter:.1f} s{share}, by Retry-After pauses {paused:.1f} s "
        "(wall time)"
    )


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1f} ms"

"""The report page: one self-contained HTML document (inline CSS and images; no script, no fetch)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from crmload.report.runfile import Run

__all__ = ["page"]

_CSS = """
:root{--ink:#1d2939;--soft:#475467;--line:#e4e7ec;--bg:#f6f7f9;--ok:#067647;--warn:#b54708;--bad:#b42318}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:#102a43;color:#fff;padding:22px 32px}header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#bcccdc;font-size:13px}
main{max-width:1320px;margin:0 auto;padding:20px 32px 40px}
.status{display:inline-block;padding:3px 10px;border-radius:12px;font-weight:600;font-size:12px;
margin-left:10px;vertical-align:middle}.ok{background:#dcfae6;color:var(--ok)}.warn{background:#fef0c7;color:var(--warn)}
.bad{background:#fee4e2;color:var(--bad)}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin:16px 0}
@media(min-width:1000px){.tiles{grid-template-columns:repeat(6,1fr)}}
.tile{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.tile b{display:block;font-size:22px;font-weight:600}.tile span{color:var(--soft);font-size:12px}
.eq{background:#fff;border:1px solid var(--line);border-left:4px solid var(--ok);border-radius:8px;
padding:12px 16px;font:600 15px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.eq.off{border-left-color:var(--bad)}
h2{font-size:16px;margin:26px 0 10px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px}
figure img{width:100%;height:auto;display:block}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line);border-radius:8px}
th,td{text-align:left;padding:7px 12px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f9fafb;color:var(--soft);font-weight:600;font-size:12px}td.n{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}.note{color:var(--soft)}
footer{color:var(--soft);font-size:12px;margin-top:28px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    try:
        return f"{round(float(value)):,}"
    except (TypeError, ValueError):
        return _e(value)


def _status(s: dict[str, Any], run: Run) -> tuple[str, str]:
    if not s:
        return "warn", "no summary: the run is still going, or was killed"
    if s.get("interrupted"):
        return "bad", "interrupted (Ctrl-C): rows left pending"
    if s.get("fatal"):
        return "bad", "stopped by a fatal error"
    if s.get("rejected") or s.get("in_doubt"):
        parts = [
            f"{int(s[k]):,} {label}"
            for k, label in (("rejected", "rejected"), ("in_doubt", "in doubt"))
            if s.get(k)
        ]
        return "warn", "finished: " + ", ".join(parts)
    return "ok", "finished: every row done"


def _duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    h, rest = divmod(whole, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _s(seconds: Any) -> str:
    return f"{float(seconds or 0):,.1f} s"


def _tiles(run: Run) -> str:
    s, c = run.summary, run.summary.get("client", {})
    get = (
        s.get
        if s
        else (lambda k, d=None: run.total(k) if k in ("read", "done", "rejected", "in_doubt") else d)
    )
    duration = s.get("duration_s") if s else (run.intervals[-1]["elapsed_s"] if run.intervals else 0)
    throttles = run.throttles_total()
    tiles = [
        (_n(get("read")), "rows read"),
        (_n(get("done")), "done"),
        (_n(get("rejected")), "rejected"),
        (_n(get("in_doubt")), "in doubt"),
        (_n(s.get("records_per_s")) if s else "n/a", "records/s (run mean)"),
        (_duration(float(duration or 0)), "duration"),
        (_n(c.get("requests", run.total("requests"))), "requests"),
        (_n(c.get("sockets_opened", run.total("sockets_opened"))), "sockets opened"),
        (_n(c.get("retries", run.total("retries"))), "retries"),
        (_n(run.total("busy_answers")), "busy answers"),
    ]
    if throttles is not None:
        tiles.append((_n(throttles), "throttles"))
    return "".join(f'<div class="tile"><b>{v}</b><span>{_e(label)}</span></div>' for v, label in tiles)


def _details(run: Run) -> str:
    s, c = run.summary, run.summary.get("client", {})
    causes = ", ".join(f"{k} {v:,}" for k, v in sorted((c.get("retries_by_cause") or {}).items()) if v)
    rows = [
        ("target", s.get("target") or run.start.get("target")),
        ("input", f"{run.start.get('file', '?')} ({_n(run.start.get('file_bytes'))} bytes)"),
        (
            "workers / rate / batch size",
            f"{run.start.get('workers')} / {run.start.get('rate') or 'default'} / "
            f"{run.start.get('batch_size')}",
        ),
        (
            "calls, requests, sockets",
            f"{_n(c.get('calls'))} calls, {_n(c.get('requests'))} requests over "
            f"{_n(c.get('sockets_opened'))} sockets ({c.get('reuse_ratio') or 'n/a'} requests per socket)",
        ),
        ("retries by cause", causes or "none"),
        (
            "workers held back (wall time)",
            f"by the rate limiter {_s(c.get('limiter_wait_s'))}, by Retry-After pauses "
            f"{_s(c.get('retry_after_wait_s'))}",
        ),
        (
            "latency (whole run)",
            f"p50 {c.get('latency_p50_ms', 'n/a')} ms, p95 {c.get('latency_p95_ms', 'n/a')} ms",
        ),
        (
            "batches",
            f"{_n(s.get('batches'))} sent, mean {s.get('mean_batch_size') or 'n/a'} rows, largest "
            f"{_n(s.get('largest_batch'))}",
        ),
        ("journal", s.get("journal") or "none kept"),
        ("rejects file", s.get("rejects") or "none"),
    ]
    if s.get("fatal"):
        rows.insert(0, ("stopped by", s["fatal"]))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _reasons(run: Run) -> str:
    reasons = run.reasons
    if not reasons:
        return '<p class="note">No row was rejected.</p>'
    total = sum(int(r["rows"]) for r in reasons) or 1
    body = "".join(
        f'<tr><td>{_e(r["reason"])}</td><td class="n">{int(r["rows"]):,}</td>'
        f'<td class="n">{100 * int(r["rows"]) / total:.1f} %</td></tr>'
        for r in reasons
    )
    more = run.final.get("reasons_more", 0) if run.final else 0
    extra = f'<p class="note">and {more} more kinds of reason.</p>' if more else ""
    head = "<tr><th>reason (row values blanked)</th><th>rows</th><th>share</th></tr>"
    return f"<table>{head}{body}</table>{extra}"


def _equation(run: Run) -> str:
    s = run.summary
    if not s:
        return (
            f"no summary yet: {run.total('done'):,} done + {run.total('rejected'):,} rejected + "
            f"{run.total('in_doubt'):,} in doubt of {run.total('read'):,} rows read so far"
        )
    done, rejected, in_doubt, read = (int(s.get(k) or 0) for k in ("done", "rejected", "in_doubt", "read"))
    balanced = done + rejected + in_doubt == read
    text = (
        f"{done:,} done + {rejected:,} rejected + {in_doubt:,} in doubt {'==' if balanced else '!='} {read:,}"
    )
    text += " rows read"
    return text if balanced else f"{text} ({int(s.get('pending') or 0):,} pending: --resume finishes them)"


def page(run: Run, charts: Sequence[tuple[str, str]], *, charts_note: str = "", source: str = "") -> str:
    """The whole HTML document for ``run``."""
    s = run.summary
    kind, status = _status(s, run)
    title = f"{run.start.get('entity', '?')} ({run.start.get('mode', '?')})"
    equation = _equation(run)
    figures = (
        "".join(f'<figure><img alt="{_e(alt)}" src="{uri}"></figure>' for alt, uri in charts)
        or f'<p class="note">{_e(charts_note or "No interval in this run.")}</p>'
    )
    runs = f" (one of {run.runs_in_file} runs in the file)" if run.runs_in_file > 1 else ""
    target = s.get("target") or run.start.get("target", "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>crmload run report: {_e(title)}</title><style>{_CSS}</style></head>
<body><header><h1>crmload run report: {_e(title)}<span class="status {kind}">{_e(status)}</span></h1>
<p>{_e(target)} &middot; started {_e(run.start.get("ts", "?"))}{_e(runs)}</p>
</header><main>
<div class="eq{"" if s.get("balanced", True) else " off"}">{_e(equation)}</div>
<div class="tiles">{_tiles(run)}</div>
<h2>Over time ({len(run.intervals)} intervals of {_e(run.start.get("interval_s", "?"))} s)</h2>
<div class="grid">{figures}</div>
<h2>Top reject reasons</h2>{_reasons(run)}
<h2>Run details</h2>{_details(run)}
<footer>Generated by crmload {_e(run.start.get("crmload", ""))} from {_e(source)}. Self-contained: no script,
no network fetch.</footer>
</main></body></html>
"""

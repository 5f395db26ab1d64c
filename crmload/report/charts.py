"""The report's four charts over time, each an inline SVG data URI (``plotting.svg_data_uri``).

x is the run's elapsed time at the end of each interval; every y value is that interval's own.
"""

from __future__ import annotations

from typing import Any

from crmload.report.plotting import PALETTE, pyplot, style_axes, svg_data_uri
from crmload.report.runfile import Run

__all__ = ["Chart", "charts"]

Chart = tuple[str, str]  # (alt text, data URI)

_SIZE = (6.4, 3.0)


def _minutes(run: Run) -> tuple[list[float], str]:
    """x values, in minutes for a run over 3 minutes, else in seconds."""
    xs = [float(i.get("elapsed_s") or 0.0) for i in run.intervals]
    if xs and xs[-1] > 180:
        return [x / 60 for x in xs], "elapsed (min)"
    return xs, "elapsed (s)"


def _series(run: Run, name: str) -> list[float | None]:
    out: list[float | None] = []
    for i in run.intervals:
        v = i.get(name)
        out.append(float(v) if isinstance(v, (int, float)) else None)
    return out


def _headroom(ax: Any, values: list[float]) -> None:
    """y from 0 to a third above the highest value: room for the legend in the top corner."""
    top = max(values, default=0.0)
    ax.set_ylim(bottom=0, top=top * 1.35 if top > 0 else 1)


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=10, color="#667085")


def _throughput(run: Run) -> Chart:
    plt = pyplot()
    xs, xlabel = _minutes(run)
    ys = [v or 0.0 for v in _series(run, "records_per_s")]
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.fill_between(xs, ys, step="pre", color=PALETTE["records"], alpha=0.15, linewidth=0)
    ax.step(xs, ys, where="pre", color=PALETTE["records"], linewidth=1.6, label="records/s")
    mean = run.summary.get("records_per_s")
    if isinstance(mean, (int, float)) and mean > 0:
        ax.axhline(mean, color=PALETTE["mean"], linestyle="--", linewidth=1, label=f"run mean {mean:,.0f}/s")
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel, fontsize=9, color="#475467")
    style_axes(ax, "Throughput", "records settled per second")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return "Throughput: records per second over the run", svg_data_uri(fig)


def _latency(run: Run) -> Chart:
    plt = pyplot()
    xs, xlabel = _minutes(run)
    fig, ax = plt.subplots(figsize=_SIZE)
    p50, p95 = _series(run, "latency_p50_ms"), _series(run, "latency_p95_ms")
    ax.plot(xs, p95, color=PALETTE["p95"], linewidth=1.6, label="p95")
    ax.plot(xs, p50, color=PALETTE["p50"], linewidth=1.6, label="p50")
    if not any(v is not None for v in p50):
        _note(ax, "no request answered")
    _headroom(ax, [v for v in p95 if v is not None])
    ax.set_xlabel(xlabel, fontsize=9, color="#475467")
    style_axes(ax, "Request latency", "ms per request")
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    return "Request latency p50 and p95 over the run", svg_data_uri(fig)


def _trouble(run: Run) -> Chart:
    plt = pyplot()
    xs, xlabel = _minutes(run)
    fig, ax = plt.subplots(figsize=_SIZE)
    series = [("retries", "retries", PALETTE["retries"]), ("busy_answers", "busy answers", PALETTE["busy"])]
    if run.throttles_total() is not None:
        for i in run.intervals:
            t = i.get("throttles", 0)
            i["_throttles"] = sum(t.values()) if isinstance(t, dict) else int(t or 0)
        series.append(("_throttles", "throttles", PALETTE["throttles"]))
    any_trouble = False
    for n, (name, label, colour) in enumerate(series):
        ys = [v or 0.0 for v in _series(run, name)]
        any_trouble = any_trouble or any(ys)
        # Retries often equal busy answers (each one retried): drawn wide and pale underneath, both show.
        width, alpha = (4.0, 0.55) if n == 0 else (1.5, 1.0)
        ax.step(
            xs, ys, where="pre", color=colour, linewidth=width, alpha=alpha, label=f"{label} ({sum(ys):,.0f})"
        )
    if not any_trouble:
        _note(ax, "no retries, busy answers or throttles")
        ax.set_yticks([0, 1])
    if any_trouble:
        _headroom(ax, [max(_series(run, name), key=lambda v: v or 0.0) or 0.0 for name, _l, _c in series])
    else:
        ax.set_ylim(bottom=0, top=1)
    ax.yaxis.get_major_locator().set_params(integer=True) if any_trouble else None
    ax.set_xlabel(xlabel, fontsize=9, color="#475467")
    style_axes(ax, "Retries, busy answers, throttles", "per interval")
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    return "Retries, busy answers and throttles per interval", svg_data_uri(fig)


def _limits(run: Run) -> Chart:
    plt = pyplot()
    xs, xlabel = _minutes(run)
    fig, ax = plt.subplots(figsize=_SIZE)
    rates = _series(run, "rate_limit")
    if any(v is not None for v in rates):
        ax.step(xs, rates, where="pre", color=PALETTE["rate"], linewidth=1.8, label="rate limit (calls/s)")
        ax.set_ylim(bottom=0, top=max(v for v in rates if v is not None) * 1.25)
    else:
        _note(ax, "rate limit: unlimited")
        ax.set_yticks([])
    style_axes(ax, "Rate limit and batch size", "calls per second")
    ax.set_xlabel(xlabel, fontsize=9, color="#475467")
    batches = _series(run, "batch_size")
    handles, labels = ax.get_legend_handles_labels()
    if max((v for v in batches if v is not None), default=0) <= 1:
        ax.set_title("one row per request (batch size 1)", loc="right", fontsize=8, color="#667085")
    else:
        ax2 = ax.twinx()
        ax2.step(xs, batches, where="pre", color=PALETTE["batch"], linewidth=1.4, linestyle="--")
        ax2.set_ylabel("rows per request", fontsize=9, color="#475467")
        ax2.set_ylim(bottom=0, top=max(v for v in batches if v is not None) * 1.25)
        ax2.tick_params(labelsize=8, colors="#475467")
        for side in ("top",):
            ax2.spines[side].set_visible(False)
        handles += ax2.get_lines()
        labels += ["batch size (rows)"]
    if handles:
        ax.legend(handles, labels, fontsize=8, frameon=False, loc="lower right")
    return "Limiter rate and batch size over the run", svg_data_uri(fig)


def _smoothed(run: Run) -> Run:
    """``run`` with a last interval much shorter than the others (the run ended in it) folded into the one
    before: a 50 ms stub would draw a spike of records/s that never happened. Counts are added, not lost."""
    ivs = run.intervals
    nominal = float(run.start.get("interval_s") or 0)
    if len(ivs) < 2 or not nominal or float(ivs[-1].get("interval_s") or 0) >= nominal / 2:
        return run
    a, b = ivs[-2], ivs[-1]
    merged = dict(b)
    span = float(a.get("interval_s") or 0) + float(b.get("interval_s") or 0)
    for name in ("read", "done", "rejected", "in_doubt", "calls", "requests", "retries", "busy_answers"):
        merged[name] = int(a.get(name) or 0) + int(b.get(name) or 0)
    ta, tb = a.get("throttles"), b.get("throttles")
    if isinstance(ta, dict) and isinstance(tb, dict):
        merged["throttles"] = {k: int(ta.get(k, 0)) + int(tb.get(k, 0)) for k in {*ta, *tb}}
    settled = merged["done"] + merged["rejected"] + merged["in_doubt"]
    merged["records_per_s"] = round(settled / span, 1) if span else 0.0
    for name in ("latency_p50_ms", "latency_p95_ms"):
        if merged.get(name) is None or int(b.get("requests") or 0) < int(a.get("requests") or 0):
            merged[name] = a.get(name)
    return Run(start=run.start, intervals=[*ivs[:-2], merged], final=run.final, runs_in_file=run.runs_in_file)


def charts(run: Run) -> list[Chart]:
    """The four charts of a run with at least one interval (an empty list otherwise)."""
    if not run.intervals:
        return []
    run = _smoothed(run)
    return [_throughput(run), _latency(run), _trouble(run), _limits(run)]

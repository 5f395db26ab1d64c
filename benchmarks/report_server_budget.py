"""The ``server_budget`` section of BENCHMARKS.md (issue 10), rendered from ``results/server_budget.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import plots
from benchmarks.report import _goal, _img, _plot, fmt, table

COLORS = {"crmload auto": "#2ca02c", "crmload limits": "#17becf", "naive": "#d62728"}


def budget_plot(doc: dict[str, Any], path: Path) -> Path:
    """Records/s (1 s bins) and requests in flight over time, one row per contender, limits drawn in."""
    plt = plots._plt()
    runs = [r for r in doc["runs"] if r.get("rep", 0) == 0 and r.get("series")]
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    ceiling = doc["ceilings"]["execution_time"]
    concurrent = doc["limits"]["concurrent"]
    for run in runs:
        series = run["series"]
        color = COLORS.get(run["contender"])
        per_s: dict[int, int] = {}
        last = 0
        for t, created, _ in series:
            per_s[int(t)] = per_s.get(int(t), 0) + created - last
            last = created
        xs = sorted(per_s)
        axes[0].plot(xs, [per_s[x] for x in xs], label=run["contender"], color=color, lw=1.2)
        times, flying = [s[0] for s in series], [s[2] for s in series]
        axes[1].plot(times, flying, label=run["contender"], color=color, lw=0.8)
    axes[0].axhline(ceiling, ls="--", color="k", lw=1, label=f"execution-time facet: {ceiling:.0f} records/s")
    axes[0].set_ylabel("records stored per second")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].axhline(concurrent, ls="--", color="k", lw=1, label=f"concurrency limit: {concurrent}")
    axes[1].set_ylabel("requests in flight (mock, 0.1 s samples)")
    axes[1].set_xlabel("seconds since start")
    axes[1].legend(loc="upper right", fontsize=8)
    lim = doc["limits"]
    fig.suptitle(
        f"{doc['rows']:,} rows under {lim['requests']} requests / {lim['exec_s']:g} s execution / "
        f"{lim['concurrent']} concurrent per {lim['window_s']:g} s, {doc['exec_ms_per_record']:g} ms a record"
    )
    return plots._save(fig, path)


def section(doc: dict[str, Any], md_dir: Path, plot_dir: Path) -> str:
    """The table of contenders, the facet ceilings, the goals and the plot."""
    lim, ceil, g = doc["limits"], doc["ceilings"], doc["goals"]
    rows = [
        [
            s["contender"],
            fmt(s["total_s"]),
            fmt(s["records_per_s"]),
            f"{100 * s['share_of_tightest']:.0f} %",
            fmt(s["requests"]),
            fmt(s["throttles"]),
            f"{100 * (s['throttled_share'] or 0):.2f} %",
            fmt(s["penalty_s"]),
            s["stored_once"],
        ]
        for s in doc["summary"]
    ]
    png = _plot(budget_plot, doc, plot_dir / "server_budget.png") if plots.available() else None
    intro = (
        f"{doc['rows']:,} rows into a mock that enforces service protection per user: {lim['requests']} "
        f"requests, {lim['exec_s']:g} s of execution and {lim['concurrent']} concurrent requests per "
        f"{lim['window_s']:g} s window, at {doc['exec_ms_per_record']:g} ms of server time per record. "
        f"Alone, each facet allows: requests {fmt(ceil['requests'])} records/s (at 1,000 a batch), "
        f"execution time {fmt(ceil['execution_time'])} records/s ({lim['exec_s']:g} s / "
        f"{lim['window_s']:g} s / {doc['exec_ms_per_record']:g} ms), concurrency "
        f"{fmt(ceil['concurrency'])} records/s. The tightest, "
        f"**execution time, allows {fmt(ceil['tightest'])} records/s**; a run's share is its records/s over "
        "that (the first window's budget is a one-off bonus, so short runs can exceed 100 %). Contenders, "
        "interleaved on fresh mocks: **crmload auto** (`--rate auto --batch-size auto --workers 8`, assuming "
        "the documented 6000/1200/52 per 300 s, so it meets the scaled limit and learns it from the first "
        "fault), **naive** (8 threads, batches of 100, each thread sleeping on its own fault for the "
        "Retry-After, as today's tools do), **crmload limits** (`--server-limits 200/4/8/10` up front)."
    )
    goals = (
        f"Goals: crmload auto at >= 90 % of the tightest facet ({fmt(g['auto_share_of_tightest'])}), at "
        f"most 1 % of its requests throttled ({fmt(g['auto_throttled_share'])}), >= 20x fewer throttles "
        f"than naive ({fmt(g['naive_over_auto_throttles'])}x) and faster ({g['auto_faster_than_naive']}); "
        f"limits up front: {fmt(g['limits_up_front_throttles'])} throttles; every row stored once: "
        f"{g['every_row_once']}. "
        f"{_goal(g['met'])}"
    )
    return "\n\n".join(
        p
        for p in [
            "## 8. The server's budget: service-protection limits (`benchmarks/results/server_budget.json`)",
            intro,
            table(
                [
                    "contender",
                    "total s",
                    "records/s",
                    "of tightest",
                    "requests",
                    "throttles",
                    "throttled",
                    "penalty s",
                    "each row once",
                ],
                rows,
            ),
            goals,
            _img(md_dir, png, "records/s and requests in flight over time, limits drawn in"),
        ]
        if p
    )

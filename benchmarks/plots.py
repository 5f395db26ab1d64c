"""PNG plots for BENCHMARKS.md, drawn from the result JSON only (matplotlib, the optional ``bench`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crmload.report import plotting

COLORS = {"naive": "#d62728", "zeep": "#ff7f0e", "crmload": "#2ca02c", "cli": "#17becf", "raw": "#7f7f7f"}


def available() -> bool:
    """Whether matplotlib (the optional ``bench`` extra) is installed; without it the report has no plots."""
    return plotting.available()


def _plt() -> Any:
    return plotting.pyplot()


def _save(fig: Any, path: Path) -> Path:
    # A fixed metadata date keeps regenerated PNGs byte-stable when the data did not change.
    return plotting.save_png(fig, path)


def sockets_vs_records(doc: dict[str, Any], path: Path) -> Path | None:
    """Sockets opened against records sent, one line per contender (first run of each)."""
    runs = [r for r in doc.get("runs", []) if r.get("rep", 0) == 0 and r.get("series")]
    if not runs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs:
        xs = [0] + [p[0] for p in r["series"]]
        ys = [0] + [p[1] for p in r["series"]]
        # zeep and crmload both keep one socket per worker: dash one so neither hides the other.
        style = "--" if r["contender"] == "zeep" else "-"
        ax.plot(xs, ys, style, label=r["contender"], color=COLORS.get(r["contender"]))
        if r.get("first_error_call"):
            ax.plot([xs[-1]], [ys[-1]], "x", color=COLORS.get(r["contender"]), ms=10)
            ax.annotate(
                f"{r['contender']} fails at call {r['first_error_call']}",
                (xs[-1], ys[-1]),
                textcoords="offset points",
                xytext=(10, -18),
            )
    ax.axhline(doc.get("ports", 990), ls="--", color="k", lw=0.8, label="port budget")
    ax.set_xlabel("records sent")
    ax.set_ylabel("sockets opened (client connect calls)")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(0, doc.get("ports", 990) * 3)
    ax.set_title("Port wall: sockets opened vs records sent")
    ax.legend()
    return _save(fig, path)


def records_per_s(doc: dict[str, Any], path: Path) -> Path | None:
    """Grouped bars: median records/s by contender and worker count."""
    rows = doc.get("summary", [])
    if not rows:
        return None
    plt = _plt()
    workers = sorted({r["workers"] for r in rows})
    names = [n for n in COLORS if any(r["contender"] == n for r in rows)]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        vals = [
            next((r["records_per_s"] or 0 for r in rows if r["contender"] == name and r["workers"] == w), 0)
            for w in workers
        ]
        xs = [j + i * width for j in range(len(workers))]
        ax.bar(xs, vals, width, label=name, color=COLORS.get(name))
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(workers))])
    ax.set_xticklabels([f"{w} workers" for w in workers])
    ax.set_ylabel("records/s (median)")
    ax.set_title("Throughput on keep-alive, no latency")
    ax.legend()
    return _save(fig, path)


def limiter_rates(doc: dict[str, Any], path: Path) -> Path | None:
    """Achieved calls/s over time for the fixed rates and for ``auto``."""
    series = [(f"--rate {r['rate']:g}", r["rate_series"], r["rate"]) for r in doc.get("fixed", [])]
    auto = doc.get("auto") or {}
    if auto.get("rate_series"):
        series.append((f"auto (busy above {auto.get('busy_above')}/s)", auto["rate_series"], None))
    if not series:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(series), 1, figsize=(7, 2.3 * len(series)), squeeze=False)
    for ax, (label, pts, target) in zip(axes[:, 0], series, strict=True):
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=label)
        if target:
            ax.axhline(target, ls="--", color="k", lw=0.8, label="target")
        if target is None and auto.get("busy_above"):
            ax.axhline(auto["busy_above"], ls="--", color="r", lw=0.8, label="mock busy threshold")
        ax.set_ylabel("calls/s (0.5 s bins)")
        ax.legend(loc="lower right")
    axes[-1, 0].set_xlabel("seconds")
    return _save(fig, path)


def rss_over_time(doc: dict[str, Any], path: Path) -> Path | None:
    """RSS of the ``crmload import`` process over time."""
    series = (doc.get("run") or {}).get("rss_series") or []
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([p[0] for p in series], [p[1] / 2**20 for p in series], color=COLORS["cli"])
    ax.axhline(100, ls="--", color="k", lw=0.8, label="goal: 100 MiB")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(f"crmload import of {doc.get('rows', 0):,} rows: RSS over time")
    ax.legend()
    return _save(fig, path)


def latency_scaling(doc: dict[str, Any], path: Path) -> Path | None:
    """Achieved calls/s against the ideal workers / 20 ms."""
    rows = sorted(doc.get("summary", []), key=lambda r: r["workers"])
    mine = [r for r in rows if r.get("contender", "crmload") == "crmload"]
    if not mine:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ws = [r["workers"] for r in mine]
    ax.plot(ws, [r["ideal_per_s"] for r in mine], "k--", label="ideal (workers / 0.02 s)")
    for name in ("raw", "crmload"):
        sel = [r for r in rows if r.get("contender", "crmload") == name]
        if sel:
            ax.plot(
                [r["workers"] for r in sel],
                [r["records_per_s"] for r in sel],
                "o-" if name == "crmload" else "s:",
                color=COLORS.get(name),
                label=name if name == "crmload" else "raw floor",
            )
    ax.set_xlabel("workers")
    ax.set_ylabel("calls/s")
    ax.set_title("Latency-bound (20 ms per call)")
    ax.legend()
    return _save(fig, path)


def batch_costs(doc: dict[str, Any], path: Path) -> Path | None:
    """Client CPU µs/record and records/s against batch size, crmload and zeep (medians, min-max bars)."""
    rows = doc.get("summary", [])
    if not rows:
        return None
    plt = _plt()
    fig, (cpu_ax, rate_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("crmload", "zeep"):
        mine = sorted((r for r in rows if r["contender"] == name), key=lambda r: r["batch"])
        xs = [r["batch"] for r in mine]
        for ax, key in ((cpu_ax, "cpu_us_per_record"), (rate_ax, "records_per_s")):
            ys = [r[key] for r in mine]
            err = [
                [y - r[f"{key}_min"] for y, r in zip(ys, mine, strict=True)],
                [r[f"{key}_max"] - y for y, r in zip(ys, mine, strict=True)],
            ]
            ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=3, label=name, color=COLORS.get(name))
    goal = (doc.get("goals") or {}).get("cpu_us_per_record_at_1000_max")
    if goal:
        cpu_ax.axhline(goal, ls="--", color="k", lw=0.8, label=f"goal at 1,000: {goal:g} µs")
    sizes = sorted({r["batch"] for r in rows})
    for ax in (cpu_ax, rate_ax):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{b:,}" for b in sizes])
        ax.set_xlabel("records per ExecuteMultiple (batch size)")
        ax.legend()
    cpu_ax.set_ylabel("client CPU µs per record")
    cpu_ax.set_title("Client CPU per record")
    rate_ax.set_ylabel("records/s (one connection, mock in its own process)")
    rate_ax.set_title("Records/s against the mock")
    return _save(fig, path)

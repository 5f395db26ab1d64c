"""Scenario plumbing plus the keep-alive throughput (2) and latency-bound (3) scenarios.

A scenario is a function ``(ctx) -> dict`` registered in ``SCENARIOS``; the dict is written as
``results/<name>.json``. ``run_one`` runs one contender against a mock and merges three views of the run: the
contender's own JSON (load loop wall and CPU), the process rusage (``os.wait4``), and the mock's counters.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import harness, netns
from benchmarks.contenders import record

#: Cap on naive's connections when no namespace isolates it: well under Linux's default 28,232 ports.
NAIVE_HOST_CAP = 2000


@dataclass
class Ctx:
    """What every scenario gets: mode, where to write, whether namespaces work, a scratch directory."""

    quick: bool
    out_dir: Path
    use_ns: bool
    ns_reason: str
    scratch: Path
    reps: int = 3
    smoke: bool = False
    log: Callable[[str], None] = print
    csv_cache: dict[int, Path] = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        """Pick a size by mode; smoke mode (the CI test) shrinks the quick size twentyfold."""
        if self.smoke:
            return max(quick // 20, 1)
        return quick if self.quick else full


def write_csv(path: Path, count: int, tag: str = "cli") -> Path:
    """Write ``count`` rows of the same records the library contenders send."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        first = record(tag, 0)
        writer.writerow(first.keys())
        for i in range(count):
            writer.writerow(record(tag, i).values())
    return path


def csv_for(ctx: Ctx, count: int) -> Path:
    """Return a cached CSV of ``count`` rows in the scratch directory."""
    if count not in ctx.csv_cache:
        ctx.csv_cache[count] = write_csv(ctx.scratch / f"accounts-{count}.csv", count)
    return ctx.csv_cache[count]


def cli_argv(csv_path: Path, url: str, workers: int, rate: str = "unlimited") -> list[str]:
    """Return the ``python -m crmload import`` command line the CLI contender runs."""
    return [
        harness.PYTHON,
        "-m",
        "crmload",
        "import",
        str(csv_path),
        "--entity",
        "account",
        "--url",
        url,
        "--org",
        "Contoso",
        "--workers",
        str(workers),
        "--rate",
        rate,
        "--no-progress",
        "--json",
    ]


def run_one(
    ctx: Ctx,
    mock: harness.Mock,
    contender: str,
    count: int,
    workers: int,
    *,
    extra: Sequence[str] = (),
    sample_rss_s: float = 0.0,
) -> dict[str, Any]:
    """Run one contender once against ``mock`` and return the merged result."""
    before, cpu0 = mock.stats(), mock.cpu_s()
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=ctx.scratch))
    try:
        if contender == "cli":
            src = shutil.copy(csv_for(ctx, count), run_dir / "accounts.csv")
            argv = cli_argv(Path(src), mock.url, workers, *extra)
        else:
            argv = harness.contender_argv(contender, mock.url, count, workers, "--tag", run_dir.name, *extra)
        proc = harness.run_process(argv, ns=mock.ns, cwd=run_dir, sample_rss_s=sample_rss_s)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    after, cpu1 = mock.stats(), mock.cpu_s()
    server = harness.stats_delta(before, after)
    stored = server["records_by_entity"].get("account", 0)
    try:
        doc = proc.json_line()
    except (RuntimeError, ValueError) as exc:
        doc = {"ok": None, "errors": None, "first_error": str(exc)[-800:]}
    if contender == "cli":
        # The CLI's own duration covers reading, mapping, journal and sending, not interpreter start-up.
        wall = doc.get("duration_s") or proc.wall_s
        doc = {"cli_summary": doc, "ok": doc.get("done", stored), "wall_s": wall}
    ok = doc.get("ok") or 0
    wall = doc.get("wall_s") or proc.wall_s
    result = {
        "contender": contender,
        "workers": workers,
        "count": count,
        **doc,
        "rc": proc.rc,
        "records_per_s": ok / wall if wall else 0.0,
        "proc_wall_s": proc.wall_s,
        "proc_cpu_s": proc.cpu_s,
        "proc_cpu_us_per_record": proc.cpu_s / ok * 1e6 if ok else None,
        "maxrss_kb": proc.maxrss_kb,
        "server": server,
        "server_cpu_s": cpu1 - cpu0,
        "stored": stored,
        "all_stored": stored == count,
        "stderr_tail": proc.stderr[-600:] if proc.rc else "",
    }
    if contender == "cli":
        result["cpu_us_per_record"] = result["proc_cpu_us_per_record"]
    if sample_rss_s:
        result["rss_series"] = proc.rss_series
    return result


def run_isolated(
    ctx: Ctx,
    contender: str,
    count: int,
    workers: int,
    extra: Sequence[str] = (),
    *,
    mock_args: Sequence[str] = (),
    sysctls: dict[str, str] | None = None,
    sample_rss_s: float = 0.0,
) -> dict[str, Any]:
    """Run one contender against its own fresh mock, in a fresh namespace when namespaces work."""
    with harness.mock_env(mock_args, use_ns=ctx.use_ns, sysctls=sysctls) as mock:
        res = run_one(ctx, mock, contender, count, workers, extra=extra, sample_rss_s=sample_rss_s)
    res["netns"] = ctx.use_ns
    return res


def summarize(runs: list[dict[str, Any]], keys: Sequence[str], group: Sequence[str]) -> list[dict[str, Any]]:
    """Return one row per group with the median of each key and the run count."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(tuple(run.get(g) for g in group), []).append(run)
    rows = []
    for gkey, members in groups.items():
        row = dict(zip(group, gkey, strict=True))
        row["runs"] = len(members)
        for k in keys:
            row[k] = harness.median([m.get(k) for m in members])
        rows.append(row)
    return rows


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def throughput(ctx: Ctx) -> dict[str, Any]:
    """Scenario 2: records/s and client CPU per record on keep-alive, no latency, workers 1, 4, 8."""
    count = ctx.size(3000, 600)
    contenders = ["naive", "zeep", "crmload", "cli", "raw"]
    runs = []
    for workers in (1, 4, 8):
        for rep, name in harness.interleave(contenders, ctx.reps):
            n = count if ctx.use_ns or name != "naive" else min(count, NAIVE_HOST_CAP)
            res = run_isolated(ctx, name, n, workers)
            res["rep"] = rep
            ctx.log(f"  throughput w={workers} {name:8s} {res['records_per_s']:8.0f} rec/s")
            runs.append(res)
    keys = ("records_per_s", "cpu_us_per_record", "proc_cpu_us_per_record", "server_cpu_s")
    summary = summarize(runs, keys, ("contender", "workers"))
    med = {(r["contender"], r["workers"]): r for r in summary}
    ratios = []
    for workers in (1, 4, 8):
        crm = med.get(("crmload", workers), {}).get("records_per_s")
        ratios.append(
            {
                "workers": workers,
                "crmload_vs_zeep": _ratio(crm, med.get(("zeep", workers), {}).get("records_per_s")),
                "crmload_vs_raw": _ratio(crm, med.get(("raw", workers), {}).get("records_per_s")),
                "cli_vs_zeep": _ratio(
                    med.get(("cli", workers), {}).get("records_per_s"),
                    med.get(("zeep", workers), {}).get("records_per_s"),
                ),
            }
        )
    profiles = profile(ctx, count)
    goals = {
        "crmload_vs_zeep_min": 2.5,
        "crmload_vs_raw_min": 0.85,
        "met_vs_zeep": all((r["crmload_vs_zeep"] or 0) >= 2.5 for r in ratios),
        "met_vs_raw": all((r["crmload_vs_raw"] or 0) >= 0.85 for r in ratios),
    }
    return {"count": count, "runs": runs, "summary": summary, "ratios": ratios, "goals": goals, **profiles}


def profile(ctx: Ctx, count: int) -> dict[str, Any]:
    """Profile one single-worker run of crmload, raw and zeep; write cProfile top entries next to the JSON."""
    files = {}
    for name in ("crmload", "raw", "zeep"):
        path = ctx.out_dir / f"profile_{name}.txt"
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        res = run_isolated(ctx, name, count, 1, ("--profile", str(path)))
        files[name] = {"file": path.name, "records_per_s_profiled": res["records_per_s"]}
    return {"profiles": files}


def latency(ctx: Ctx) -> dict[str, Any]:
    """Scenario 3: 20 ms mock latency, rate unlimited; achieved calls/s against workers / 0.02 s."""
    seconds = ctx.size(3, 2)
    runs = []
    for workers in (1, 2, 4, 8, 16):
        ideal = workers / 0.020
        # The raw floor (pre-rendered envelopes through the same transport) shows what the mock, the kernel
        # and urllib3 cost per call before crmload adds anything.
        for rep, name in harness.interleave(["crmload", "raw"], ctx.reps):
            res = run_isolated(ctx, name, int(ideal * seconds), workers, mock_args=("--latency-ms", "20"))
            res.update(rep=rep, ideal_per_s=ideal, vs_ideal=res["records_per_s"] / ideal)
            ctx.log(f"  latency {name:8s} w={workers:2d} {res['records_per_s']:7.1f}/s of {ideal:.0f} ideal")
            runs.append(res)
    summary = summarize(runs, ("records_per_s", "ideal_per_s", "vs_ideal"), ("contender", "workers"))
    mine = [r for r in summary if r["contender"] == "crmload"]
    met = all((r["vs_ideal"] or 0) >= 0.95 for r in mine if r["workers"] <= 8)
    return {"seconds": seconds, "runs": runs, "summary": summary, "goals": {"vs_ideal_min": 0.95, "met": met}}


def _registry() -> dict[str, Callable[[Ctx], dict[str, Any]]]:
    from benchmarks import scenarios_batches, scenarios_limits, scenarios_ports, server_budget

    return {
        "port_wall": scenarios_ports.port_wall,
        "throughput": throughput,
        "latency": latency,
        "limiter_precision": scenarios_limits.limiter,
        "broken_keepalive": scenarios_ports.broken_keepalive,
        "memory": scenarios_limits.memory,
        "batches": scenarios_batches.batches,
        "server_budget": server_budget.scenario,
    }


def scenario_names() -> list[str]:
    """Names of all scenarios, in run order."""
    return list(_registry())


def run_scenario(name: str, ctx: Ctx) -> Path:
    """Run scenario ``name``, write its JSON, print its medians, and return the JSON path."""
    started = time.monotonic()
    ctx.log(f"== {name} ({'quick' if ctx.quick else 'full'}; netns={'yes' if ctx.use_ns else 'no'})")
    load_before = list(os.getloadavg())
    doc = _registry()[name](ctx)
    doc["loadavg_before"] = load_before
    doc.setdefault("netns", ctx.use_ns)
    doc.setdefault("netns_reason", ctx.ns_reason)
    path = harness.write_result(ctx.out_dir, name, doc, quick=ctx.quick, started=started)
    for row in doc.get("summary", []):
        ctx.log("   " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
    for row in doc.get("ratios", []):
        ctx.log("   ratio " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
    ctx.log(f"   goals: {doc.get('goals')}  -> {path}")
    return path


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def netns_state() -> tuple[bool, str]:
    """Whether runs can be isolated in namespaces here, and why not."""
    return netns.available()

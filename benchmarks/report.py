"""Render ``BENCHMARKS.md`` and its plots from the JSON in ``benchmarks/results/``; no number typed by hand.

``python -m benchmarks --report-only`` regenerates the file. Other engineers' result files (every other
``*.json`` in the results directory) get a section each, rendered generically as a table of their scalar
numbers, so their authors never edit this module; ``OTHER_RESULTS`` only gives the known ones a title and an
order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks import analysis, harness, plots

OTHER_RESULTS = {
    "mock_throughput": "Mock server throughput",
    "codec": "SOAP codec micro-benchmark",
    "transport": "Transport micro-benchmark",
    "limiter": "Limiter micro-benchmark",
    "auth": "NTLM authentication cost",
    "threads": "CPU per call as worker threads are added",
    "codec2011": "Organization service codec against zeep",
    "mock_batch_throughput": "Mock Organization service: ExecuteMultiple throughput",
    "gzip_pages": "Mock: gzip of RetrieveMultiple pages",
    "mock_h11_probe": "Mock: h11 against the hand-written HTTP parser",
    "chaos": "Chaos: SIGKILL loops, exactly-once",
    "plan": "Plans: one migrate against separate imports of the same files",
}
MAIN_SCENARIOS = (
    "port_wall",
    "throughput",
    "latency",
    "limiter_precision",
    "broken_keepalive",
    "memory",
    "batches",
    "server_budget",
)


def _other_names(results: Path) -> list[tuple[str, str]]:
    """Known result files first, in ``OTHER_RESULTS`` order, then any other JSON file by name."""
    known = [(n, t) for n, t in OTHER_RESULTS.items() if (results / f"{n}.json").exists()]
    rest = sorted(
        p.stem for p in results.glob("*.json") if p.stem not in OTHER_RESULTS and p.stem not in MAIN_SCENARIOS
    )
    return known + [(n, n.replace("_", " ").capitalize()) for n in rest]


def _load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    return dict(json.loads(path.read_text()))


def fmt(v: Any, digits: int = 3) -> str:
    """Format a number for a table: ints with separators, floats to ``digits`` significant figures."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _img(md_dir: Path, path: Path | None, alt: str) -> str:
    if path is None:
        return "" if plots.available() else "_(plot not drawn: matplotlib is not installed)_"
    return f"![{alt}]({os.path.relpath(path, md_dir)})"


def _plot(fn: Any, doc: dict[str, Any], path: Path) -> Path | None:
    return fn(doc, path) if plots.available() else None


def _machine(docs: dict[str, dict[str, Any]]) -> str:
    any_doc = next(iter(docs.values()), None)
    if not any_doc:
        return "_No results yet: run `python -m benchmarks`._"
    m = any_doc["machine"]
    quick = any(d.get("quick") for d in docs.values())
    loads = {n: d.get("loadavg_before") for n, d in docs.items()}
    lines = [
        table(
            ["cores", "CPU", "Python", "kernel", "date (UTC)"],
            [[m["cores"], m["cpu_model"], f"{m['implementation']} {m['python']}", m["kernel"], m["date"]]],
        ),
        "",
        "Library versions: " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()) + ".",
        "",
        "Load average (1/5/15 min) when each scenario started: "
        + "; ".join(f"{n} {'/'.join(f'{x:.2f}' for x in (v or []))}" for n, v in loads.items())
        + ". Other engineers may have been running test suites on the same 2 cores; the interleaving below "
        "spreads such noise over every contender alike.",
    ]
    if quick:
        lines += ["", "**These figures come from a `--quick` run (small sizes), not a full run.**"]
    return "\n".join(lines)


METHOD = """\
How the figures were taken:
- Every scenario starts its own mock CRM (`python -m crmload mock`) in a separate process, so client and
  server CPU are separate. When run as root, every single run gets a fresh Linux network namespace
  (`ip netns`) holding both the mock and the contender: a fresh port range and TIME_WAIT table,
  isolated from the host.
- Each contender runs as its own process (`python -m benchmarks.contenders NAME ...`, or `python -m crmload
  import` for the CLI). Runs are interleaved A B C A B C, 3 rounds unless noted; tables show medians.
- records/s and "CPU µs/record" are taken around the load loop inside the contender (wall clock and
  `time.process_time`), after imports and set-up; "process CPU µs/record" is the whole process from `os.wait4`
  rusage, start-up included. For the CLI contender both are whole-process figures.
- Sockets are counted twice: on the client by a `socket.connect` audit hook (same for every contender), and on
  the server as `connections_accepted`. Records stored are the mock's `records_by_entity` count.
- Contenders: **naive** = `requests.post` per call with an f-string envelope; **zeep** = zeep `Client` on the
  real CRM 4.0 WSDL with a pooled `requests.Session`, DynamicEntity `Create`; **crmload** = `CrmClient.create`
  from worker threads; **cli** = `python -m crmload import` on a CSV of the same records; **raw** = envelopes
  rendered by crmload's codec before the clock starts, posted through crmload's `Transport` (no mapping,
  journal, limiter or response parsing): the floor crmload's own overhead is measured against."""


def _goal(ok: Any) -> str:
    return "met" if ok else "**missed**"


def _section_port_wall(doc: dict[str, Any], md_dir: Path, plot_dir: Path) -> str:
    if doc.get("skipped"):
        return f"## 1. The port wall\n\nSkipped: {doc['reason']}."
    rows = [
        [
            r["contender"],
            r["ok"],
            r["errors"],
            r["first_error_call"],
            r["sockets_opened"],
            r["records_per_s"],
            r["all_stored_every_run"],
            r.get("first_error"),
        ]
        for r in doc["summary"]
    ]
    png = _plot(plots.sockets_vs_records, doc, plot_dir / "port_wall_sockets.png")
    return "\n\n".join(
        [
            "## 1. The port wall",
            f"A namespace with {doc['ports']} local ports (`ip_local_port_range 40000 40989`), "
            f"`tcp_tw_reuse=0` and Linux's fixed {doc['time_wait_s']:.0f} s TIME_WAIT: "
            f"{fmt(doc['budget_per_s'])} new connections/s sustained. Each contender loads "
            f"{fmt(doc['count'])} records with {doc['workers']} workers; crmload runs "
            "with `rate=unlimited`, reading the namespace's budget with `PortBudget.from_host()`. Medians of "
            f"{doc['summary'][0]['runs']} runs.",
            table(
                [
                    "contender",
                    "records ok",
                    "errors",
                    "first failing call",
                    "sockets opened (server)",
                    "records/s",
                    "every record stored",
                    "first error",
                ],
                rows,
            ),
            _img(md_dir, png, "sockets opened vs records sent"),
        ]
    )


def _section_throughput(doc: dict[str, Any], md_dir: Path, plot_dir: Path, results: Path) -> str:
    rows = [
        [
            r["contender"],
            r["workers"],
            r["records_per_s"],
            r["cpu_us_per_record"],
            r["proc_cpu_us_per_record"],
            r["runs"],
        ]
        for r in sorted(doc["summary"], key=lambda r: (r["workers"], r["contender"]))
    ]
    ratios = [
        [r["workers"], r["crmload_vs_zeep"], r["crmload_vs_raw"], r["cli_vs_zeep"]] for r in doc["ratios"]
    ]
    png = _plot(plots.records_per_s, doc, plot_dir / "throughput_records_per_s.png")
    g = doc["goals"]
    parts = [
        "## 2. Throughput on keep-alive",
        f"No latency, 2007 endpoint, {fmt(doc['count'])} records per run.",
        table(
            ["contender", "workers", "records/s", "CPU µs/record (loop)", "process CPU µs/record", "runs"],
            rows,
        ),
        "Ratios of medians:",
        table(["workers", "crmload ÷ zeep", "crmload ÷ raw floor", "cli ÷ zeep"], ratios),
        f"Goals: crmload ≥ 2.5x zeep + Session: {_goal(g['met_vs_zeep'])}; crmload ≥ 0.85x raw floor: "
        f"{_goal(g['met_vs_raw'])}.",
        analysis.throughput_analysis(doc),
        _img(md_dir, png, "records/s by contender and workers"),
    ]
    crm_prof, raw_prof = results / "profile_crmload.txt", results / "profile_raw.txt"
    if crm_prof.exists() and raw_prof.exists():
        parts.append(analysis.profile_breakdown(crm_prof.read_text(), raw_prof.read_text()))
    for name, info in (doc.get("profiles") or {}).items():
        path = results / info["file"]
        if path.exists():
            top = _profile_top(path.read_text(), 14)
            parts.append(
                f"Profile of `{name}` (1 worker, cProfile, sorted by own time; full text in "
                f"`benchmarks/results/{info['file']}`):\n\n```\n{top}\n```"
            )
    return "\n\n".join(parts)


def _profile_top(text: str, n: int) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
    head = [line for line in lines[:start] if "function calls" in line]
    return "\n".join([*head, *lines[start : start + n + 1]]).rstrip()


def _section_latency(doc: dict[str, Any], md_dir: Path, plot_dir: Path) -> str:
    rows = [
        [
            r.get("contender", "crmload"),
            r["workers"],
            r["ideal_per_s"],
            r["records_per_s"],
            r["vs_ideal"],
            r["runs"],
        ]
        for r in sorted(doc["summary"], key=lambda r: (r["workers"], r.get("contender", "")))
    ]
    png = _plot(plots.latency_scaling, doc, plot_dir / "latency_scaling.png")
    return "\n\n".join(
        [
            "## 3. Latency-bound",
            f"Mock latency 20 ms, `rate=unlimited`, about {doc['seconds']} s of calls per run.",
            table(
                ["contender", "workers", "ideal calls/s", "achieved calls/s", "achieved ÷ ideal", "runs"],
                rows,
            ),
            f"Goal ≥ 0.95x ideal up to 8 workers: {_goal(doc['goals']['met'])}.",
            analysis.latency_note(doc),
            _img(md_dir, png, "achieved vs ideal calls/s"),
        ]
    )


def _section_limiter(doc: dict[str, Any], md_dir: Path, plot_dir: Path) -> str:
    rows = [
        [
            r["rate"],
            r["seconds"],
            r["calls"],
            r["mean_rate"],
            r["mean_error"],
            r["max_in_1s"],
            r["max_allowed_in_1s"],
            r.get("max_in_1s_completions"),
            r["met_mean"] and r["met_peak"],
        ]
        for r in doc["fixed"]
    ]
    auto = doc.get("auto") or {}
    faults = (auto.get("server") or {}).get("faults_by_kind")
    png = _plot(plots.limiter_rates, doc, plot_dir / "limiter_rate_over_time.png")
    return "\n\n".join(
        [
            "## 4. Limiter precision",
            f"crmload library, 4 workers, no mock latency. Timestamps: {doc.get('timestamps_taken')}.",
            table(
                [
                    "rate",
                    "seconds",
                    "calls",
                    "mean rate",
                    "mean error",
                    "max calls in any 1 s",
                    "allowed (rate + burst)",
                    "max in any 1 s (completions)",
                    "goals met",
                ],
                rows,
            ),
            f"`auto` against a mock busy above {auto.get('busy_above')} calls/s: "
            f"{fmt(auto.get('calls'))} calls "
            f"at a mean {fmt(auto.get('mean_rate'))}/s; server faults {fmt(json.dumps(faults))}.",
            analysis.limiter_note(doc),
            _img(md_dir, png, "achieved rate over time"),
        ]
    )


def _section_broken(doc: dict[str, Any]) -> str:
    if doc.get("skipped"):
        return f"## 5. Broken keep-alive\n\nSkipped: {doc['reason']}."
    rows = [
        [
            r["contender"],
            r["ok"],
            r["errors"],
            r["first_error_call"],
            r["sockets_opened"],
            r["new_conn_per_s"],
            r["sustained_conn_per_s"],
        ]
        for r in doc["summary"]
    ]
    return "\n\n".join(
        [
            "## 5. Broken keep-alive",
            "The mock answers `Connection: close` on every response (`--close-every 1`), inside the "
            "port-wall namespace "
            f"(budget {fmt(doc['budget_per_s'])} new connections/s).",
            table(
                [
                    "contender",
                    "records ok",
                    "errors",
                    "first failing call",
                    "connections",
                    "new conns/s (whole run)",
                    "new conns/s (after start-up burst)",
                ],
                rows,
            ),
            f"crmload stays under the budget after its start-up burst: "
            f"{_goal(doc['goals']['crmload_under_budget'])}.",
            analysis.broken_keepalive_note(doc),
        ]
    )


def _section_memory(doc: dict[str, Any], md_dir: Path, plot_dir: Path) -> str:
    png = _plot(plots.rss_over_time, doc, plot_dir / "memory_rss.png")
    g = doc["goals"]
    return "\n\n".join(
        [
            "## 6. Memory",
            table(
                [
                    "rows",
                    "CSV size (MiB)",
                    "records/s",
                    "peak RSS (MiB)",
                    "RSS growth over 2nd half (MiB)",
                    "every record stored",
                ],
                [
                    [
                        doc["rows"],
                        doc["csv_bytes"] / 2**20,
                        doc["records_per_s"],
                        doc["peak_rss_bytes"] / 2**20,
                        doc["rss_growth_second_half_bytes"] / 2**20,
                        doc["all_stored"],
                    ]
                ],
            ),
            f"Goal peak RSS ≤ 100 MiB: {_goal(g['met_peak'])}; flat (≤ 10 MiB growth over the second half): "
            f"{_goal(g['flat'])}.",
            _img(md_dir, png, "RSS over time"),
        ]
    )


def _section_other(name: str, title: str, doc: dict[str, Any]) -> str:
    parts = [f"### {title} (`benchmarks/results/{name}.json`)"]
    for sub, headers, rows in analysis.generic_tables(doc)[:12]:
        if sub:
            parts.append(f"`{sub}`:")
        parts.append(table(headers, rows))
    return "\n\n".join(parts)


def _goals_summary(docs: dict[str, dict[str, Any]]) -> str:
    rows = analysis.goal_rows(docs)
    return table(["scenario", "goal", "met"], rows) if rows else ""


def render(results: Path = harness.RESULTS) -> Path:
    """Render the report for ``results``; the repository's BENCHMARKS.md when it is the default directory."""
    default = results.resolve() == harness.RESULTS.resolve()
    md_path = harness.ROOT / "BENCHMARKS.md" if default else results / "BENCHMARKS.md"
    plot_dir = harness.ROOT / "benchmarks" / "plots" if default else results / "plots"
    md_dir = md_path.parent
    docs = {n: d for n in MAIN_SCENARIOS if (d := _load(results, n)) is not None}
    parts = [
        "# crmload benchmarks",
        "_Generated by `python -m benchmarks --report-only` from `benchmarks/results/*.json`; do not edit by "
        "hand. Reproduce everything with `pip install -e '.[bench]' && sudo python -m benchmarks` "
        "(add `--quick` for a few-minute run)._",
        "## Machine",
        _machine(docs),
        METHOD,
        "## Goals at a glance",
        _goals_summary(docs),
    ]
    if "port_wall" in docs:
        parts.append(_section_port_wall(docs["port_wall"], md_dir, plot_dir))
    if "throughput" in docs:
        parts.append(_section_throughput(docs["throughput"], md_dir, plot_dir, results))
    if "latency" in docs:
        parts.append(_section_latency(docs["latency"], md_dir, plot_dir))
    if "limiter_precision" in docs:
        parts.append(_section_limiter(docs["limiter_precision"], md_dir, plot_dir))
    if "broken_keepalive" in docs:
        parts.append(_section_broken(docs["broken_keepalive"]))
    if "memory" in docs:
        parts.append(_section_memory(docs["memory"], md_dir, plot_dir))
    if "batches" in docs:
        from benchmarks import report_batches

        parts.append(report_batches.section(docs["batches"], md_dir, plot_dir))
    if "server_budget" in docs:
        from benchmarks import report_server_budget

        parts.append(report_server_budget.section(docs["server_budget"], md_dir, plot_dir))
    others = [(n, t, d) for n, t in _other_names(results) if (d := _load(results, n)) is not None]
    if others:
        parts.append("## Component benchmarks (from their owners' result files)")
        parts += [_section_other(n, t, d) for n, t, d in others]
    md_path.write_text("\n\n".join(p for p in parts if p) + "\n", encoding="utf-8")
    return md_path

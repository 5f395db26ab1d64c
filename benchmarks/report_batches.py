"""The ``batches`` section of BENCHMARKS.md (issue 9), rendered from ``results/batches.json`` only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import plots
from benchmarks.report import _goal, _img, _plot, fmt, table


def _range(row: dict[str, Any], key: str) -> str:
    return f"{fmt(row[key])} ({fmt(row[f'{key}_min'])}-{fmt(row[f'{key}_max'])})"


def section(doc: dict[str, Any], md_dir: Path, plot_dir: Path) -> str:
    """Tables of client CPU and records/s by batch size, the ratios to zeep, the goals and the plot."""
    rows = [
        [
            r["contender"],
            r["batch"],
            r["count"],
            _range(r, "cpu_us_per_record"),
            _range(r, "records_per_s"),
            r["mock_cpu_us_per_record"],
            r["mock_cpu_share"],
            r["mock_busy"],
            r["all_stored"],
            r["runs"],
        ]
        for r in doc["summary"]
    ]
    ratios = [
        [r["batch"], _range(r, "records_per_s_ratio"), _range(r, "client_cpu_ratio")] for r in doc["ratios"]
    ]
    at = {(r["contender"], r["batch"]): r for r in doc["summary"]}
    crm = at.get(("crmload", 1000), {})
    g = doc["goals"]
    share = fmt(crm.get("mock_cpu_share"))
    bound = (
        f"At batch 1,000 the mock spent {fmt(crm.get('mock_cpu_us_per_record'))} µs CPU per record against "
        f"crmload's {fmt(crm.get('cpu_us_per_record'))} (mock share {share}); with one request at a time the "
        "two take turns, so the mock, not the client, set crmload's records/s, and the records/s ratio "
        "understates the client-side difference: the client CPU ratio is the client-side cost."
        if doc.get("mock_bound_at_1000")
        else f"At batch 1,000 the mock's share of the CPU per record was {share}."
    )
    mock_us, zeep_rate = crm.get("mock_cpu_us_per_record"), at.get(("zeep", 1000), {}).get("records_per_s")
    if mock_us and zeep_rate:
        ceiling = 1e6 / mock_us
        bound += (
            f" A client that cost nothing would reach at most {fmt(ceiling)} records/s against this mock "
            f"(1 s ÷ its CPU per record), {fmt(ceiling / zeep_rate)}x zeep's median."
        )
    png = _plot(plots.batch_costs, doc, plot_dir / "batches_cpu_and_rate.png")
    return "\n\n".join(
        [
            "## 7. ExecuteMultiple batches (Organization service)",
            "Creates of one account record shape "
            f"({', '.join(f'{k}: {v}' for k, v in doc['record'].items())}) in batches of 1 to 1,000, "
            "crmload (`CrmClient.create_many`, one batch per call) and zeep (the real 2011 WSDL, "
            "`Execute(ExecuteMultipleRequest)`, pooled `requests.Session`) in alternate rounds against one "
            "mock "
            f"in its own process. Wire: crmload {doc['wire']['crmload']}; zeep {doc['wire']['zeep']}. "
            f"Counts: {doc['counts_note']}. Medians with (min-max) over rounds.",
            table(
                [
                    "client",
                    "batch",
                    "records per run",
                    "client CPU µs/record",
                    "records/s",
                    "mock CPU µs/record",
                    "mock share of CPU/record",
                    "mock busy (cores)",
                    "every record stored",
                    "rounds",
                ],
                rows,
            ),
            "crmload ÷ zeep, paired round by round:",
            table(["batch", "records/s ratio", "client CPU ratio (zeep ÷ crmload)"], ratios),
            f"Goals: client CPU ≤ {g['cpu_us_per_record_at_1000_max']:g} µs/record at 1,000: "
            f"{_goal(g['met_cpu'])}; ≥ {g['records_per_s_ratio_at_1000_min']:g}x zeep's records/s at 1,000: "
            f"{_goal(g['met_ratio'])}. {bound}",
            _img(md_dir, png, "client CPU per record and records/s by batch size"),
        ]
    )

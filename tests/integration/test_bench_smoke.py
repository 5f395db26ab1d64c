"""CI smoke test of the benchmark harness: one scenario at tiny sizes runs and writes valid JSON.

It asserts only that the harness works end to end (mock process, contender processes, JSON, report), never a
time or a speed: benchmarks are not tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _smoke(out: Path, scenario: str, *extra: str) -> dict[str, Any]:
    """Run ``python -m benchmarks --smoke`` for one scenario (one round, no namespaces); return its JSON."""
    argv = [sys.executable, "-m", "benchmarks", "--smoke", "--only", scenario, "--reps", "1", "--no-netns"]
    done = subprocess.run(
        [*argv, *extra, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads((out / f"{scenario}.json").read_text()))


@pytest.mark.slow
def test_latency_scenario_smoke_writes_json_and_report(tmp_path: Path) -> None:
    out = tmp_path / "results"
    doc = _smoke(out, "latency")
    assert doc["scenario"] == "latency"
    assert {"machine", "runs", "summary", "goals", "loadavg_before"} <= doc.keys()
    assert {"cores", "python", "cpu_model", "kernel", "date"} <= doc["machine"].keys()
    for contender in ("crmload", "raw"):
        rows = [r for r in doc["summary"] if r["contender"] == contender]
        assert sorted(r["workers"] for r in rows) == [1, 2, 4, 8, 16]
    for run in doc["runs"]:
        assert run["rc"] == 0, run.get("stderr_tail")
        # Every call the contender reports as done reached the mock's store.
        assert run["ok"] == run["count"] == run["stored"]
        assert {"records_per_s", "proc_cpu_s", "server", "ideal_per_s", "vs_ideal"} <= run.keys()
    report = (out / "BENCHMARKS.md").read_text()
    assert "## 3. Latency-bound" in report


@pytest.mark.slow
def test_batches_scenario_smoke_counts_every_record_in_the_mock(tmp_path: Path) -> None:
    """The ``batches`` scenario at two batches per run: its JSON's shape, and stored == sent; never timing."""
    doc = _smoke(tmp_path / "results", "batches", "--no-report")
    assert doc["scenario"] == "batches"
    assert {"machine", "runs", "summary", "ratios", "goals", "counts", "loadavg_before"} <= doc.keys()
    assert len(doc["machine"]["loadavg"]) == 3
    assert {"met_cpu", "met_ratio"} <= doc["goals"].keys()
    runs = {(r["contender"], r["batch"]): r for r in doc["runs"]}
    assert sorted(runs) == sorted((c, b) for c in ("crmload", "zeep") for b in (1, 10, 100, 1000))
    for (contender, batch), run in runs.items():
        assert run["rc"] == 0, run["stderr_tail"]
        assert run["count"] == doc["counts"][contender][str(batch)] == 2 * batch
        # Every record the client reports created is in the mock's store: the warm-up batch plus the run.
        assert run["ok"] == run["count"]
        assert run["stored"] == run["sent"] == run["count"] + run["warmup_records"]
        assert run["batches"] == 2
        # The mock saw batches of exactly this size (the histogram's keys are JSON strings).
        assert run["batch_sizes"] == {str(batch): run["batches"] + 1}
        assert run["connects_after_warmup"] == 0  # one pooled keep-alive connection for the whole run
        assert {"cpu_us_per_record", "records_per_s", "mock_cpu_s", "proc_cpu_s"} <= run.keys()
    assert [(r["contender"], r["batch"]) for r in doc["summary"]] == [
        (c, b) for b in (1, 10, 100, 1000) for c in ("crmload", "zeep")
    ]
    assert [r["batch"] for r in doc["ratios"]] == [1, 10, 100, 1000]

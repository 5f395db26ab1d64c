"""CI smoke test of the benchmark harness: one scenario at tiny sizes runs and writes valid JSON.

It asserts only that the harness works end to end (mock process, contender processes, JSON, report), never a
time or a speed: benchmarks are not tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_latency_scenario_smoke_writes_json_and_report(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--smoke",
            "--only",
            "latency",
            "--reps",
            "1",
            "--no-netns",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads((out / "latency.json").read_text())
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

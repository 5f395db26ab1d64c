"""SIGKILL ``crmload migrate`` three times at random points of a 4-entity plan, then ``--resume`` (issue 11).

The plan (``benchmarks/plan_bench.write_plan_files``): accounts with parents listed after their children
(levels) and primary contacts (a cycle with contacts: an update pass), contacts, opportunities and cases.
Kills land at seeded counts of done rows summed over the plan's journals, so they fall in any load, pass or
the update pass. The mock answers 5 % busy and resets 2 % of connections after committing. Afterwards every
row is exactly one record in the mock's store and every lookup points at the record its key names.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.plan_bench import write_plan_files
from crmload.load import key_id
from crmload.mock import FaultPlan, MockCrm

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

ROOT = Path(__file__).resolve().parents[2]
ROWS = 4_000
SEED = 5


def _done(state: Path) -> int:
    total = 0
    for path in state.glob("*.sqlite"):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
                total += db.execute("SELECT count(*) FROM rows WHERE state = 'done'").fetchone()[0]
        except sqlite3.Error:
            continue  # created a moment ago, or mid-checkpoint: the next poll sees it
    return total


def _argv(plan: Path, url: str, state: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "crmload",
        "migrate",
        str(plan),
        "--url",
        url,
        "--state-dir",
        str(state),
        "--batch-size",
        "50",
        "--rate",
        "unlimited",
        "--json",
        "--no-progress",
        "-q",
        *extra,
    ]


def _kill_at(argv: list[str], state: Path, threshold: int) -> bool:
    """Run ``argv`` and SIGKILL it once the journals hold ``threshold`` done rows; True if it was running."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if _done(state) >= threshold:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.01)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _ref(rec: dict[str, object], attr: str) -> object:
    value = rec.get(attr)
    return value.get("id") if isinstance(value, dict) else None


def test_three_sigkills_then_resume_every_row_once_and_every_lookup_set(
    crm_factory: Callable[..., MockCrm], tmp_path: Path
) -> None:
    data = write_plan_files(tmp_path, ROWS, seed=SEED)
    crm = crm_factory(
        faults=FaultPlan(
            latency_ms=3, busy_rate=0.05, retry_after_s=0, reset_after_commit_rate=0.02, seed=SEED
        )
    )
    plan, state = tmp_path / "plan.toml", tmp_path / "state"
    links = sum(1 for row in data["accounts.csv"] if row[3])
    rng = random.Random(SEED)
    thresholds = sorted(rng.sample(range(ROWS // 10, ROWS - ROWS // 10), 3))
    landed = [
        _kill_at(_argv(plan, crm.url2011, state, *(["--resume"] if i else [])), state, t)
        for i, t in enumerate(thresholds)
    ]
    assert landed == [True, True, True]  # each kill hit a running plan
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        _argv(plan, crm.url2011, state, "--resume"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=120,
    )
    out = json.loads(res.stdout)
    assert res.returncode == 0, res.stderr[-2000:]
    assert out["balanced"]
    assert out["done"] == out["read"] == sum(len(rows) for rows in data.values())
    assert out["links"]["done"] == links
    # Every row is exactly one record, and every lookup names the record of its key.
    want = {
        "account": {
            str(key_id("account", r[0])): {
                "parentaccountid": r[2] and ("account", r[2]),
                "primarycontactid": r[3] and ("contact", r[3]),
            }
            for r in data["accounts.csv"]
        },
        "contact": {
            str(key_id("contact", r[0])): {"parentcustomerid": ("account", r[1])}
            for r in data["contacts.csv"]
        },
        "opportunity": {
            str(key_id("opportunity", r[0])): {
                "customerid": ("account", r[2]),
                "new_decisionmakerid": ("contact", r[3]),
            }
            for r in data["opportunities.csv"]
        },
        "incident": {
            str(key_id("incident", r[0])): {
                "customerid": ("account", r[2]),
                "responsiblecontactid": ("contact", r[3]),
            }
            for r in data["cases.csv"]
        },
    }
    for entity, expected in want.items():
        records = crm.records(entity)
        ids = [r[f"{entity}id"] for r in records]
        assert len(ids) == len(set(ids)) == len(expected), entity
        for rec in records:
            for attr, target in expected[rec[f"{entity}id"]].items():
                assert _ref(rec, attr) == (str(key_id(*target)) if target else None), (entity, attr)

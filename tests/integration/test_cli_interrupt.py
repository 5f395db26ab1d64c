"""Issue 16 item 14: Ctrl-C prints the summary with the rest pending and exits 130; --resume then finishes.

A real subprocess against a slow mock gets a real SIGINT mid-run; the journal's rows and the mock's store are
counted afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crmload.mock import FaultPlan, MockCrm

REPO = Path(__file__).resolve().parents[2]
ROWS = 400

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _states(journal: Path) -> dict[str, int]:
    with sqlite3.connect(journal) as db:
        return dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())


def _import(src: Path, journal: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMLOAD_")}
    args = [
        sys.executable,
        "-m",
        "crmload",
        "import",
        str(src),
        "--entity",
        "account",
        "--key",
        "accountnumber",
    ]
    args += [
        "--url",
        url,
        "--org",
        "Contoso",
        "--rate",
        "unlimited",
        "--workers",
        "2",
        "--journal",
        str(journal),
    ]
    args += ["--json", "--no-progress", *extra]
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
    )


def test_sigint_prints_the_summary_leaves_the_rest_pending_and_exits_130(tmp_path: Path) -> None:
    src = tmp_path / "big.csv"
    src.write_text("accountnumber,name\n" + "".join(f"K-{i},N{i}\n" for i in range(ROWS)), encoding="utf-8")
    journal = tmp_path / "big.journal"
    with MockCrm(org="Contoso", faults=FaultPlan(latency_ms=40)) as crm:
        proc = _import(src, journal, crm.url)
        deadline = time.monotonic() + 60
        while len(crm.records("account")) < 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        stored_after_stop = len(crm.records("account"))

        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert [line for line in err.splitlines() if line.startswith("crmload: error:")] == [
            line for line in err.splitlines() if "interrupted with" in line and "--resume continues" in line
        ]
        summary = json.loads(out)
        assert summary["interrupted"] is True
        assert summary["exit_code"] == 130
        states = _states(journal)
        assert states.get("done", 0) == summary["done"] == stored_after_stop
        assert summary["pending"] == states.get("pending", 0) > 0
        assert summary["done"] + summary["pending"] == summary["read"]
        assert summary["done"] < ROWS

        crm.configure(FaultPlan())  # the rest goes fast: this part checks counts, not patience
        resumed = _import(src, journal, crm.url, "--resume")
        out2, err2 = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err2
        assert json.loads(out2)["done"] == ROWS
        assert _states(journal) == {"done": ROWS}
        assert len(crm.records("account")) == ROWS

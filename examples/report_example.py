"""Make the example run report (docs/report-example.png): a CRM 4.0 import at ``--rate auto`` against a mock
that answers busy above 150 requests/s, with a few bad rows, watched by ``--metrics``.

    python examples/report_example.py OUT_DIR        # writes OUT_DIR/run.jsonl and OUT_DIR/report.html

The auto rate climbs from the port budget (16 calls/s) until the server says busy, halves, and climbs again;
the report shows that saw-tooth, the busy answers and retries it costs, and the rejected rows by reason.
"""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

from crmload.mock import FaultPlan, MockCrm

ROWS = 12_000


def make_input(path: Path, rows: int = ROWS, seed: int = 15) -> Path:
    """Accounts, 1 in ~150 with a bad value (an impossible date, a word for a number, a too-long name)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["accountnumber", "name", "revenue", "numberofemployees", "lastusedincampaign"])
        for i in range(1, rows + 1):
            name, revenue = f"Account {i} Ltd", f"{rng.uniform(1e4, 1e7):.2f}"
            staff: int | str = rng.randint(1, 5000)
            date = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            bad = rng.random()
            if bad < 0.003:
                date = "2024-02-30"
            elif bad < 0.005:
                revenue = "about a million"
            elif bad < 0.006:
                staff = "many"
            w.writerow([f"A-{i:06d}", name, revenue, staff, date])
    return path


def main(out: Path) -> int:
    """Run the import against the mock, then the report."""
    out.mkdir(parents=True, exist_ok=True)
    src = make_input(out / "accounts.csv")
    metrics = out / "run.jsonl"
    metrics.unlink(missing_ok=True)
    plan = FaultPlan(busy_above_rate=150, retry_after_s=1.0, latency_ms=4, jitter_ms=8, seed=15)
    with MockCrm(org="Contoso", faults=plan) as crm:
        args = [sys.executable, "-m", "crmload", "import", str(src), "--entity", "account"]
        args += ["--key", "accountnumber", "--url", crm.url, "--org", "Contoso", "--rate", "auto"]
        args += ["--workers", "8", "--journal", str(out / "j.sqlite"), "--restart"]
        args += ["--metrics", str(metrics), "--metrics-interval", "2", "--no-progress"]
        subprocess.run(args, check=False)
    report = [sys.executable, "-m", "crmload", "report", str(metrics), "-o", str(out / "report.html")]
    subprocess.run(report, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "report-example")))

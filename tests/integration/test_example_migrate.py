"""Issue 16 item 17: examples/migrate.py's ``resume=True`` really continues: its journal outlives the run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from crmload.mock import MockCrm

REPO = Path(__file__).resolve().parents[2]


def _run(crm: MockCrm, workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMLOAD_")}
    env |= {"CRMLOAD_URL": crm.url, "CRMLOAD_ORG": "Contoso", "CRMLOAD_WORKDIR": str(workdir)}
    env["CRMLOAD_RATE"] = "unlimited"
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / "migrate.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )


def test_second_run_of_the_example_continues_from_its_journal(crm: MockCrm, tmp_path: Path) -> None:
    first = _run(crm, tmp_path)
    assert first.returncode == 0, first.stderr
    creates = crm.stats()["requests_by_op"]["Create"]
    accounts, contacts = len(crm.records("account")), len(crm.records("contact"))
    assert (accounts, contacts) == (500, 300)
    journals = sorted(p.name for p in tmp_path.glob("*.crmload.sqlite"))
    assert journals == ["accounts.csv.crmload.sqlite", "contacts.csv.crmload.sqlite"]
    with sqlite3.connect(tmp_path / "contacts.csv.crmload.sqlite") as db:
        assert db.execute("SELECT count(*) FROM rows WHERE state = 'done'").fetchone() == (300,)

    second = _run(crm, tmp_path)
    assert second.returncode == 0, second.stderr
    # Contacts have no key: without the journal a second run would create all 300 again.
    assert crm.stats()["requests_by_op"]["Create"] == creates
    assert (len(crm.records("account")), len(crm.records("contact"))) == (500, 300)
    assert "500 rows already settled by an earlier run" in second.stderr
    assert "300 rows already settled by an earlier run" in second.stderr

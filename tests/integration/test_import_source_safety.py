"""Issue 16, items 2-4, as a user meets them on the command line.

2. An open quote fails its own line only: every other row loads, the count is the file's true count.
3. A ragged row's rejects file keeps the raw line; fed back unfixed, the row is rejected again, never loaded.
4. ``--resume`` refuses a file edited mid-way (same size, beyond the first and last MiB) before sending.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from crmload.cli import main
from crmload.mock import MockCrm

ROOT = Path(__file__).resolve().parents[2]
UNTERMINATED = 'UQ-{i},"Acme, unterminated,desc'


def _import(crm: MockCrm, path: Path, *flags: str) -> list[str]:
    return [
        "import",
        str(path),
        "--entity",
        "account",
        "--url",
        crm.url,
        "--org",
        "Contoso",
        "--rate",
        "unlimited",
        "--no-progress",
        *flags,
    ]


def _run(
    crm: MockCrm, capsys: pytest.CaptureFixture[str], path: Path, *flags: str
) -> tuple[int, dict[str, Any], str]:
    code = main(_import(crm, path, "--json", *flags))
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def _rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("bad_at", [2, 500, 1000])
def test_open_quote_costs_one_row_and_the_count_is_true(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad_at: int
) -> None:
    lines = ["accountnumber,name,description\n"]
    for i in range(1, 1001):
        # Every 50th row quotes a name, so an open quote also meets later quotes, not only the end.
        name = f'"Name {i}, Ltd"' if i % 50 == 0 else f"Name {i}"
        lines.append(UNTERMINATED.format(i=i) + "\n" if i == bad_at else f"A-{i},{name},desc\n")
    src = tmp_path / "uq.csv"
    src.write_text("".join(lines), encoding="utf-8")

    code, summary, err = _run(crm, capsys, src)

    assert code == 3
    assert (summary["read"], summary["done"], summary["rejected"]) == (1000, 999, 1)
    assert summary["balanced"]
    assert summary["source"]["physical_lines"] == 1001
    assert summary["source"]["unaccounted_lines"] == 0
    assert len(crm.records("account")) == 999
    (reject,) = _rejects(tmp_path / "uq.rejects.csv")
    assert reject["crmload_raw"] == UNTERMINATED.format(i=bad_at)
    assert reject["crmload_line"] == str(bad_at + 1)
    assert "unreadable record" in reject["crmload_error"]
    assert (reject["accountnumber"], reject["name"], reject["description"]) == ("", "", "")
    if bad_at < 1000:  # the lines after it were read again: a warning says so
        assert f"line {bad_at + 1} is unreadable" in err
        assert f"reading on at line {bad_at + 2}" in err


def test_max_record_lines_flag_bounds_a_quoted_record(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "q.csv"
    src.write_text('name,description\nA,"open\nB,x\nC,y\n', encoding="utf-8")
    code, summary, _ = _run(crm, capsys, src, "--max-record-lines", "2")
    assert (code, summary["done"], summary["rejected"]) == (3, 2, 1)
    (reject,) = _rejects(tmp_path / "q.rejects.csv")
    assert "runs past 2 lines" in reject["crmload_error"]
    assert main(_import(crm, src, "--max-record-lines", "0")) == 2


def test_a_ragged_rows_rejects_file_fed_back_unfixed_is_rejected_again(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "r.csv"
    src.write_text(
        "accountnumber,name,address1_city,description\nRG-1,Smith, John,Paris,VIP customer\nRG-2,Short\n",
        encoding="utf-8",
    )
    code, summary, _ = _run(crm, capsys, src, "--key", "accountnumber")
    assert (code, summary["rejected"]) == (3, 2)
    rows = _rejects(tmp_path / "r.rejects.csv")
    assert [r["crmload_raw"] for r in rows] == ["RG-1,Smith, John,Paris,VIP customer", "RG-2,Short"]
    assert all(r[c] == "" for r in rows for c in ("accountnumber", "name", "address1_city", "description"))

    code, summary, _ = _run(crm, capsys, tmp_path / "r.rejects.csv", "--key", "accountnumber")

    assert (code, summary["read"], summary["done"], summary["rejected"]) == (3, 2, 0, 2)
    assert crm.records("account") == []
    again = _rejects(tmp_path / "r.rejects.rejects.csv")
    assert [r["crmload_raw"] for r in again] == ["RG-1,Smith, John,Paris,VIP customer", "RG-2,Short"]
    assert all(r["crmload_error"].startswith("fix the row") for r in again)

    # Fixed as the message says: values in their columns, crmload_raw emptied. Now it loads, aligned.
    rows[0].update(accountnumber="RG-1", name="Smith, John", address1_city="Paris", crmload_raw="")
    rows[0]["description"] = "VIP customer"
    fixed = tmp_path / "r.fixed.csv"
    with fixed.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerow(rows[0])
    code, summary, _ = _run(crm, capsys, fixed, "--key", "accountnumber")
    assert (code, summary["done"]) == (0, 1)
    (record,) = crm.records("account")
    assert (record["name"], record["address1_city"], record["description"]) == (
        "Smith, John",
        "Paris",
        "VIP customer",
    )


def _journal_rows(path: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1)
        try:
            return int(db.execute("SELECT count(*) FROM rows").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _states(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT line, state FROM rows ORDER BY line").fetchall()
    db.close()
    return found


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_resume_refuses_a_same_size_edit_mid_file_before_sending_anything(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "big.csv"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_csv.py"), "20000", str(src)], check=True)
    assert src.stat().st_size > 2 * 1024 * 1024
    journal = tmp_path / "big.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMLOAD_")}
    cmd = [
        sys.executable,
        "-m",
        "crmload",
        *_import(crm, src, "--key", "accountnumber", "--journal", str(journal)),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while proc.poll() is None and _journal_rows(journal) < 10_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)  # a partial run (it may also have finished: the check is the same)
    proc.wait()
    assert _journal_rows(journal) >= 9_501

    data = src.read_bytes()
    assert data.count(b"\nA-009500,") == 1
    src.write_bytes(data.replace(b"\nA-009500,", b"\nB-009500,"))
    assert len(src.read_bytes()) == len(data)
    before, states = crm.stats()["requests"], _states(journal)

    code = main(_import(crm, src, "--key", "accountnumber", "--journal", str(journal), "--resume"))

    err = capsys.readouterr().err
    assert code == 1
    assert "line 9501" in err
    assert "changed" in err
    # Only the preflight's WhoAmI and one-row RetrieveMultiple: no Create, not even a settling Retrieve.
    assert crm.stats()["requests"] == before + 2
    assert "B-009500" not in {r.get("accountnumber") for r in crm.records("account")}
    assert _states(journal) == states

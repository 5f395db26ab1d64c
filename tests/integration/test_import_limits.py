"""`crmload import` refuses what CRM would refuse, before sending: lengths, dates, money (issue 16 #16)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from crmload.cli import main
from crmload.mock import MockCrm

ROWS = [
    ("A-1", "x" * 200_000, "1", "2020-01-01"),  # line 2: name over 160
    ("A-2", "fine", "1" * 29, "2020-01-01"),  # line 3: 29-digit Money
    ("A-3", "fine", "1", "0001-01-01"),  # line 4: before 1753
    ("A-4", "fine", "1.5", "2020-01-01"),  # line 5: good
    ("A-5", "fine", "2.123456", "2020-01-01"),  # line 6: more than 4 places
]
EXPECTED = {
    "2": ("name", "200000 characters, longer than the maximum length 160"),
    "3": ("creditlimit", "outside the valid range -922337203685477..922337203685477"),
    "4": ("lastusedincampaign", "outside the valid range 1753-01-01T00:00:00..9999-12-31T23:59:59"),
    "6": ("creditlimit", "more than 4 decimal places"),
}


def _source(tmp_path: Path) -> Path:
    path = tmp_path / "limits.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["accountnumber", "name", "creditlimit", "lastusedincampaign"])
        w.writerows(ROWS)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["import", *args, "--json", "--no-progress"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def test_dry_run_finds_every_value_over_its_limit_and_sends_nothing(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _source(tmp_path)
    code, s = _run(capsys, str(src), "--entity", "account", "--url", crm.url, "--org", "Contoso", "--dry-run")
    assert (code, s["read"], s["done"], s["rejected"]) == (3, 5, 1, 4)
    assert crm.stats()["requests"] == 0


def test_real_run_rejects_them_by_line_and_column_before_sending(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _source(tmp_path)
    rejects = tmp_path / "out.rejects.csv"
    code, s = _run(
        capsys,
        str(src),
        "--entity",
        "account",
        "--key",
        "accountnumber",
        "--url",
        crm.url,
        "--org",
        "Contoso",
        "--rate",
        "unlimited",
        "--rejects",
        str(rejects),
    )
    assert (code, s["done"], s["rejected"]) == (3, 1, 4)
    # Only the good row reached the server: the mock saw one Create, and stores one record.
    assert crm.stats()["requests_by_op"].get("Create") == 1
    assert [r["accountnumber"] for r in crm.records("account")] == ["A-4"]
    with rejects.open(encoding="utf-8-sig", newline="") as fh:
        found = {row["crmload_line"]: row["crmload_error"] for row in csv.DictReader(fh)}
    assert sorted(found) == sorted(EXPECTED)
    for line, (column, reason) in EXPECTED.items():
        assert f"column {column!r}" in found[line]
        assert reason in found[line]

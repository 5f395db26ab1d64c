"""`crmload import` against the real mock through the real CrmClient: re-runs with --key, dry run, faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crmload.cli import main
from crmload.load import key_id
from crmload.mock import FaultPlan, MockCrm

REPO = Path(__file__).resolve().parents[2]
HEADER = "accountnumber,name,revenue,industrycode,lastusedincampaign\n"


def run_import(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    """Run the CLI in-process with --json; return (exit code, summary, stderr)."""
    code = main(["import", *args, "--json", "--no-progress"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def _accounts(tmp_path: Path, n: int, name: str = "Acc", bad: tuple[int, ...] = ()) -> Path:
    path = tmp_path / "accounts.csv"
    lines = [HEADER]
    for i in range(1, n + 1):
        date = "2024-02-30" if i in bad else "2024-01-15"
        lines.append(f'A-{i:04d},"{name} {i}, Ltd",{i}.50,3,{date}\n')
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _ids(crm: MockCrm) -> list[str]:
    return sorted(r["accountid"] for r in crm.records("account"))


def test_rerun_with_key_and_new_journal_never_duplicates(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _accounts(tmp_path, 40)
    common = [
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
    ]
    code, first, _ = run_import(capsys, str(src), *common, "--journal", str(tmp_path / "j1"))
    assert (code, first["done"], first["already_present"]) == (0, 40, 0)
    expected = sorted(str(key_id("account", f"A-{i:04d}")) for i in range(1, 41))
    assert _ids(crm) == expected

    code, again, _ = run_import(capsys, str(src), *common, "--journal", str(tmp_path / "j2"))
    assert (code, again["done"], again["already_present"]) == (0, 40, 40)
    assert _ids(crm) == expected

    renamed = _accounts(tmp_path, 40, name="New")
    code, up, _ = run_import(
        capsys, str(renamed), *common, "--mode", "upsert", "--journal", str(tmp_path / "j3")
    )
    assert (code, up["done"], up["equation"]) == (0, 40, "40 done + 0 rejected + 0 in doubt == 40 rows read")
    assert _ids(crm) == expected
    assert all(r["name"].startswith("New ") for r in crm.records("account"))


def test_same_file_same_target_is_refused_then_resumed_or_restarted(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _accounts(tmp_path, 5)
    common = [str(src), "--entity", "account", "--key", "accountnumber", "--url", crm.url, "--org", "Contoso"]
    assert run_import(capsys, *common)[0] == 0
    assert (src.parent / "accounts.csv.crmload.sqlite").exists()
    code, _, err = run_import(capsys, *common)
    assert code == 1
    assert "use --resume to continue, or --restart to begin again" in err
    assert "Traceback" not in err
    code, resumed, _ = run_import(capsys, *common, "--resume")
    assert (code, resumed["done"], resumed["skipped_from_journal"]) == (0, 5, 5)
    code, restarted, _ = run_import(capsys, *common, "--restart")
    assert (code, restarted["already_present"]) == (0, 5)
    assert main(["import", *common, "--resume", "--restart"]) == 2
    capsys.readouterr()


def test_dry_run_sends_nothing_and_reports_would_be_rejects(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _accounts(tmp_path, 30, bad=(4, 9, 27))
    before = crm.stats()["requests"]
    code, s, _ = run_import(
        capsys, str(src), "--entity", "account", "--url", crm.url, "--org", "Contoso", "--dry-run"
    )
    assert crm.stats()["requests"] == before == 0
    assert (code, s["dry_run"], s["done"], s["rejected"]) == (3, True, 27, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.csv"]  # findings on stdout only
    assert [(r["line"], r["column"], r["phase"]) for r in s["rejected_rows"]] == [
        (line, "lastusedincampaign", "map") for line in (5, 10, 28)
    ]
    assert all("not a date" in r["error"] for r in s["rejected_rows"])
    named = tmp_path / "findings.csv"
    code, s, _ = run_import(capsys, str(src), "--entity", "account", "--dry-run", "--rejects", str(named))
    assert (code, "rejected_rows" in s, s["rejects"]) == (3, False, str(named))
    rejects = named.read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[0] for line in rejects[1:]] == ["A-0004", "A-0009", "A-0027"]
    assert all("not a date" in line for line in rejects[1:])
    assert crm.records("account") == []


def test_rejects_file_imports_again_as_is(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _accounts(tmp_path, 10, bad=(2, 5))
    common = [
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
    ]
    code, s, _ = run_import(capsys, str(src), *common)
    assert (code, s["rejected"]) == (3, 2)
    rejects = tmp_path / "accounts.rejects.csv"
    fixed = rejects.read_text(encoding="utf-8").replace("2024-02-30", "2024-02-28")
    rejects.write_text(fixed, encoding="utf-8")
    code, s, _ = run_import(capsys, str(rejects), *common)
    assert (code, s["read"], s["done"]) == (0, 2, 2)
    assert len(crm.records("account")) == 10


def test_faults_busy_reset_after_commit_and_close_every_load_each_row_once(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crm.configure(
        FaultPlan(
            busy_rate=0.08,
            retry_after_s=0.01,
            reset_after_commit_rate=0.08,
            reset_before_commit_rate=0.04,
            close_every=7,
            seed=3,
        )
    )
    src = _accounts(tmp_path, 200)
    code, s, err = run_import(
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
        "--workers",
        "4",
    )
    assert code == 0, err
    assert (s["done"], s["rejected"], s["in_doubt"]) == (200, 0, 0)
    assert _ids(crm) == sorted(str(key_id("account", f"A-{i:04d}")) for i in range(1, 201))
    assert s["client"]["retries"] > 0
    faults = crm.stats()["faults_by_kind"]
    assert sum(faults.values()) > 0


def test_fatal_errors_are_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _accounts(tmp_path, 2)
    code = main(
        [
            "import",
            str(src),
            "--entity",
            "account",
            "--url",
            "http://127.0.0.1:9/x.asmx",
            "--org",
            "Contoso",
            "--map",
            str(tmp_path / "missing.toml"),
        ]
    )
    _, err = capsys.readouterr()
    assert code == 1
    assert err.count("\n") == 1
    assert "cannot read map file" in err
    assert "Traceback" not in err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "--help"])
    assert exit_info.value.code == 0
    assert "python -m crmload import examples/accounts.csv --entity account" in capsys.readouterr().out


def test_embedded_mock_demo_runs_twice(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRMLOAD_URL", raising=False)
    monkeypatch.delenv("CRMLOAD_ORG", raising=False)
    for _ in range(2):
        code, s, err = run_import(capsys, str(REPO / "examples" / "accounts.csv"), "--entity", "account")
        assert code == 0, err
        assert (s["read"], s["done"], s["rejected"]) == (500, 500, 0)
        assert "embedded mock CRM at http://127.0.0.1:" in err
    assert not (REPO / "examples" / "accounts.csv.crmload.sqlite").exists()
    assert not (REPO / "examples" / "accounts.rejects.csv").exists()

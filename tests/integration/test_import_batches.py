"""`crmload import` through the Organization service in batches (issue 9: acceptance 1, 2; the CLI flags).

Every test runs the real CLI in-process against a real mock server with bearer tokens, and counts what the
mock stored and the requests it answered.
"""

from __future__ import annotations

import csv
import json
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crmload.cli import main
from crmload.load import Journal, Loader, Target
from crmload.mock import MockCrm

REPO = Path(__file__).resolve().parents[2]
TOKEN = "tok-8c1f0e"  # the mock's test token


def run_import(
    capsys: pytest.CaptureFixture[str], *args: str, json_out: bool = True
) -> tuple[int, dict[str, Any], str]:
    """Run the CLI in-process; return (exit code, --json summary, stderr)."""
    code = main(["import", *args, "--no-progress", *(["--json"] if json_out else [])])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if json_out and out.strip() else {"text": out}), err


@pytest.fixture
def org(crm_factory: Callable[..., MockCrm], monkeypatch: pytest.MonkeyPatch) -> MockCrm:
    """A mock that accepts one bearer token, with the token in $CRM_TOKEN."""
    monkeypatch.setenv("CRM_TOKEN", TOKEN)
    return crm_factory(org="Contoso", tokens={TOKEN: "loader"})


def _batch_requests(stats: dict[str, Any]) -> int:
    return int(stats["requests_by_dialect"].get("2011", {}).get("Execute:ExecuteMultiple", 0))


def _without_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [{k: v for k, v in r.items() if k != "accountid"} for r in records]
    return sorted(rows, key=lambda r: str(r["accountnumber"]))


def test_examples_load_in_at_most_two_requests_and_match_a_2007_run(
    org: MockCrm, crm_factory: Callable[..., MockCrm], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = REPO / "examples" / "accounts.csv"
    common = ["--entity", "account", "--rate", "unlimited"]
    code, s, err = run_import(
        capsys,
        str(src),
        *common,
        "--url",
        org.url2011,
        "--token-env",
        "CRM_TOKEN",
        "--journal",
        str(tmp_path / "j"),
    )
    assert code == 0, err
    assert (s["read"], s["done"], s["batch_size"]) == (500, 500, "auto")
    stats = org.stats()
    assert 1 <= _batch_requests(stats) <= 2
    assert stats["items_by_op"]["Create"] == 500
    assert s["batches"] == _batch_requests(stats)
    assert TOKEN not in err

    old = crm_factory(org="Contoso")
    code, s2007, err = run_import(
        capsys, str(src), *common, "--url", old.url, "--org", "Contoso", "--journal", str(tmp_path / "j2007")
    )
    assert (code, s2007["done"], s2007["batches"], s2007["mean_batch_size"]) == (0, 500, 500, 1.0), err
    assert old.stats()["requests_by_op"]["Create"] == 500
    assert _without_ids(org.records("account")) == _without_ids(old.records("account"))


def _ten_thousand(tmp_path: Path, bad_every: int = 100) -> tuple[Path, set[str]]:
    """10,000 rows; 1 % (scattered by a seeded draw) name a parent account that does not exist."""
    rng = random.Random(9)
    bad_rows = set(rng.sample(range(1, 10_001), 10_000 // bad_every))
    path = tmp_path / "ten.csv"
    bad_numbers = set()
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["accountnumber", "name", "parentaccountid:lookup(account)"])
        for i in range(1, 10_001):
            parent = str(uuid.UUID(int=rng.getrandbits(128), version=4)) if i in bad_rows else ""
            if parent:
                bad_numbers.add(f"T-{i:05d}")
            w.writerow([f"T-{i:05d}", f"Ten {i}", parent])
    return path, bad_numbers


def test_one_percent_bad_rows_cost_one_row_each_in_auto_batches(
    org: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, bad = _ten_thousand(tmp_path)
    rejects = tmp_path / "rejects.csv"
    code, s, err = run_import(
        capsys,
        str(src),
        "--entity",
        "account",
        "--url",
        org.url2011,
        "--token-env",
        "CRM_TOKEN",
        "--batch-size",
        "auto",
        "--rate",
        "unlimited",
        "--journal",
        str(tmp_path / "j"),
        "--rejects",
        str(rejects),
    )
    assert code == 3, err
    assert (s["read"], s["done"], s["rejected"], s["in_doubt"]) == (10_000, 9_900, 100, 0)
    assert s["balanced"]
    assert s["equation"].startswith("9900 done + 100 rejected + 0 in doubt ==")
    assert s["item_faults_by_code"] == {"0x80040217": 100}
    stored = [r["accountnumber"] for r in org.records("account")]
    assert len(stored) == len(set(stored)) == 9_900
    assert set(stored).isdisjoint(bad)
    with rejects.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["accountnumber"] for r in rows} == bad
    for r in rows:
        assert int(r["crmload_line"]) == int(r["accountnumber"][2:]) + 1  # header is line 1
        assert r["crmload_phase"] == "send"
        assert (
            f"account With Id = {r['parentaccountid:lookup(account)']} Does Not Exist" in r["crmload_error"]
        )
    # Batches, not rows: far fewer requests than rows, each within the Organization service's maximum.
    sizes = {int(k): n for k, n in org.stats()["batch_sizes"].items()}
    assert sum(sizes.values()) == s["batches"] < 100
    assert max(sizes) <= 1000


def test_results_are_journalled_per_batch_not_per_row(org: MockCrm, tmp_path: Path) -> None:
    from crmload import CrmClient
    from crmload.auth import Bearer

    rows = [{"accountnumber": f"J-{i}", "name": f"J {i}"} for i in range(2_000)]
    target = Target(url=org.url2011, org="Contoso", entity="account", mode="create")
    with CrmClient(org.url2011, auth=Bearer(TOKEN), rate="unlimited") as client:
        journal = Journal.open(tmp_path / "j.sqlite", target)
        loader = Loader(client, "account", journal=journal, batch_size=500, workers=2, target=target)
        s = loader.run(rows)
        commits = journal.commits
        journal.close()
    assert (s.done, s.batches, s.mean_batch_size) == (2_000, 4, 500.0)
    # Unkeyed rows: per batch one commit before sending and one for its results; pending rows per chunk.
    assert commits <= 2 * 4 + 2_000 // 200 + 2


def test_modes_through_batches_update_upsert_delete(
    org: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "m.csv"
    src.write_text("accountnumber,name\n" + "".join(f"M-{i},Name {i}\n" for i in range(30)), encoding="utf-8")
    base = [str(src), "--entity", "account", "--key", "accountnumber", "--url", org.url2011]
    base += ["--token-env", "CRM_TOKEN", "--batch-size", "10", "--rate", "unlimited"]
    code, s, err = run_import(capsys, *base, "--mode", "upsert", "--journal", str(tmp_path / "a"))
    assert (code, s["done"], s["batches"]) == (0, 30, 3), err
    src.write_text("accountnumber,name\n" + "".join(f"M-{i},New {i}\n" for i in range(30)), encoding="utf-8")
    code, s, err = run_import(capsys, *base, "--mode", "update", "--journal", str(tmp_path / "b"))
    assert (code, s["done"]) == (0, 30), err
    assert sorted(r["name"] for r in org.records("account")) == sorted(f"New {i}" for i in range(30))
    code, s, err = run_import(capsys, *base, "--mode", "delete", "--journal", str(tmp_path / "c"))
    assert (code, s["done"]) == (0, 30), err
    assert org.records("account") == []
    assert org.stats()["items_by_op"]["Upsert"] == 30


def test_token_env_unset_is_a_clear_error_naming_the_variable(
    org: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRM_TOKEN")
    src = REPO / "examples" / "accounts.csv"
    code, _s, err = run_import(
        capsys,
        str(src),
        "--entity",
        "account",
        "--url",
        org.url2011,
        "--token-env",
        "CRM_TOKEN",
        json_out=False,
    )
    assert code in (1, 2)
    assert "CRM_TOKEN" in err
    assert "not set" in err
    assert org.stats()["requests"] == 0


def test_wrong_token_fails_the_preflight_before_anything_is_read(
    org: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TOKEN", "not-the-token")
    src = REPO / "examples" / "accounts.csv"
    journal = tmp_path / "j"
    args = [str(src), "--entity", "account", "--url", org.url2011, "--token-env", "CRM_TOKEN"]
    code, _s, err = run_import(capsys, *args, "--journal", str(journal), json_out=False)
    assert code == 1
    assert "preflight" in err
    assert "check the token" in err
    assert "not-the-token" not in err
    assert not journal.exists()
    assert org.stats()["faults_by_kind"].get("bearer_401", 0) >= 1
    assert org.records("account") == []


def test_preflight_on_2011_names_an_unknown_entity(
    org: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "x.csv"
    src.write_text("name\nx\n", encoding="utf-8")
    args = [str(src), "--entity", "new_nothing", "--url", org.url2011, "--token-env", "CRM_TOKEN"]
    code, _s, err = run_import(capsys, *args, "--journal", str(tmp_path / "j"), json_out=False)
    assert code == 1
    assert "new_nothing" in err
    assert "--entity" in err


def test_batch_size_above_one_on_crm4_is_a_usage_error(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = REPO / "examples" / "accounts.csv"
    args = [str(src), "--entity", "account", "--url", crm.url, "--org", "Contoso", "--batch-size", "50"]
    code, _s, err = run_import(capsys, *args, "--journal", str(tmp_path / "j"), json_out=False)
    assert code == 2
    assert "CRM 4.0 has no batches" in err
    assert crm.records("account") == []


def test_endpoint_flag_and_url_must_agree(crm: MockCrm, capsys: pytest.CaptureFixture[str]) -> None:
    src = REPO / "examples" / "accounts.csv"
    code, _s, err = run_import(
        capsys, str(src), "--entity", "account", "--url", crm.url, "--endpoint", "2011", json_out=False
    )
    assert code == 2
    assert "2007" in err


def test_embedded_mock_speaks_2011_with_endpoint_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRMLOAD_URL", raising=False)
    monkeypatch.delenv("CRMLOAD_ORG", raising=False)
    code, s, err = run_import(
        capsys, str(REPO / "examples" / "accounts.csv"), "--entity", "account", "--endpoint", "2011"
    )
    assert code == 0, err
    assert (s["done"], s["batch_size"]) == (500, "auto")
    assert s["batches"] <= 2
    assert "/XRMServices/2011/Organization.svc/web" in err
    assert not (REPO / "examples" / "accounts.csv.crmload.sqlite").exists()

"""Issue 14, preflight and circuit breaker: what is wrong with the whole run stops it, rows left pending.

Acceptance 1: wrong organisation, wrong password, unknown entity and a refused privilege each exit 1 with
nothing in the rejects file and every row pending (or not yet journalled); after the fix, ``--resume`` loads
every row. Acceptance 2: a privilege fault on every create from row 1,000 on stops the run within 50 rows,
rows before it done and the rest pending. Acceptance 3: an unreachable URL fails at start after a few connect
attempts, while a call mid-run still gets the full retry policy. Counts, never time.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import VirtualClock

from crmload.cli import main
from crmload.client import CrmClient
from crmload.errors import PreflightError, RetryExhaustedError
from crmload.metadata import load_metadata
from crmload.mock import FaultPlan, MockCrm
from crmload.retry import DEFAULT_RETRY_POLICY

USER = "CONTOSO\\alice"
PASSWORD = "Right-horse-battery-9"


def _csv(tmp_path: Path, rows: int) -> Path:
    src = tmp_path / "in.csv"
    src.write_text("name\n" + "".join(f"Acc {i}\n" for i in range(1, rows + 1)), encoding="utf-8")
    return src


def _import(
    capsys: pytest.CaptureFixture[str], src: Path, url: str, *extra: str, org: str = "Contoso"
) -> tuple[int, dict[str, Any], str]:
    argv = ["import", str(src), "--url", url, "--org", org, "--rate", "unlimited", "--workers", "4"]
    if "--entity" not in extra:
        argv += ["--entity", "account"]
    code = main([*argv, "--json", "--no-progress", *extra])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def _journal(src: Path) -> dict[str, int]:
    """Rows per state; a pending row that may have been sent shows as "pending+sent" (resume: in doubt)."""
    path = Path(f"{src}.crmload.sqlite")
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT state, attempts > 0, count(*) FROM rows GROUP BY 1, 2").fetchall()
    return {f"{state}{'+sent' if sent and state == 'pending' else ''}": n for state, sent, n in rows}


def _no_rejects(src: Path) -> bool:
    rejects = src.parent / "in.rejects.csv"
    return not rejects.exists() or len(rejects.read_text(encoding="utf-8").splitlines()) <= 1


def _loaded_after_resume(
    capsys: pytest.CaptureFixture[str], src: Path, url: str, rows: int, *extra: str
) -> None:
    code, summary, err = _import(capsys, src, url, "--resume", *extra)
    assert code == 0, err
    assert (summary["done"], summary["rejected"], summary["in_doubt"], summary["read"]) == (rows, 0, 0, rows)


# --- acceptance 1 -------------------------------------------------------------------------------------------


def test_wrong_org_fails_preflight_then_resume_loads_every_row(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _csv(tmp_path, 60)
    code, _, err = _import(capsys, src, crm.url, org="Nope")
    assert code == 1
    assert "organisation 'Nope' was not found" in err
    assert _journal(src) == {}  # nothing journalled, so nothing rejected and nothing in doubt
    assert _no_rejects(src)
    _loaded_after_resume(capsys, src, crm.url, 60)
    assert len(crm.records("account")) == 60


def test_wrong_org_without_preflight_trips_the_breaker_with_rows_pending(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _csv(tmp_path, 300)
    code, summary, err = _import(capsys, src, crm.url, "--no-preflight", "--breaker", "10", org="Nope")
    assert code == 1
    assert "CircuitOpenError" in err
    assert "10 sent rows in a row failed with the same fault 0x80040220" in err
    assert "--org" in err
    assert (summary["rejected"], summary["in_doubt"], summary["done"]) == (0, 0, 0)
    assert set(_journal(src)) == {"pending"}
    assert _no_rejects(src)
    # The run stopped on the 10th identical fault: only the 3 other workers' requests in flight followed it.
    assert crm.stats()["crm_faults_by_code"]["0x80040220"] <= 10 + 3


@pytest.mark.parametrize("preflight", [True, False])
def test_wrong_password_exits_1_then_resume_loads_every_row(
    crm_factory: Callable[..., MockCrm],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    preflight: bool,
) -> None:
    ntlm = crm_factory(users={USER: PASSWORD})
    src = _csv(tmp_path, 50)
    flags = ("--user", USER) + (() if preflight else ("--no-preflight",))
    monkeypatch.setenv("CRMLOAD_PASSWORD", "wrong-password")
    code, _, err = _import(capsys, src, ntlm.url, *flags)
    assert code == 1
    assert ("the server refused the credentials" in err) == preflight
    assert "AuthenticationError" in err or preflight
    journal = _journal(src)
    # Unkeyed creates refused by authentication were never applied: pending, not "maybe sent".
    assert journal == ({} if preflight else {"pending": 50}), journal
    assert _no_rejects(src)
    monkeypatch.setenv("CRMLOAD_PASSWORD", PASSWORD)
    _loaded_after_resume(capsys, src, ntlm.url, 50, "--user", USER)
    assert len(ntlm.records("account")) == 50


def test_unknown_entity_fails_preflight_and_a_custom_one_the_server_knows_passes(
    crm_factory: Callable[..., MockCrm], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "extra.json"
    extra.write_text(
        json.dumps({"new_region": {"primary_key": "new_regionid", "attributes": {"new_name": "String"}}})
    )
    server = crm_factory(metadata=load_metadata(extra))
    src = _csv(tmp_path, 30)
    code, _, err = _import(capsys, src, server.url, "--entity", "nope")
    assert code == 1
    assert "the server does not know entity 'nope'" in err
    assert _journal(src) == {}
    assert _no_rejects(src)
    with CrmClient(server.url, org="Contoso") as client:
        result = client.preflight("new_region")  # not in the bundled metadata; the server knows it
        assert (result.entity, result.entity_checked) == ("new_region", True)
        with pytest.raises(PreflightError) as info:
            client.preflight("nope")
    assert info.value.cause == "entity"
    _loaded_after_resume(capsys, src, server.url, 30)  # the fix: --entity account


def test_refused_privilege_trips_the_breaker_then_resume_loads_every_row(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crm.configure(FaultPlan(privilege_denied_after=0))
    src = _csv(tmp_path, 200)
    code, summary, err = _import(capsys, src, crm.url)  # preflight passes: WhoAmI and reads are allowed
    assert code == 1
    assert "20 sent rows in a row failed with the same fault 0x80040220" in err
    assert "grant the calling user the privilege" in err
    assert (summary["rejected"], summary["in_doubt"], summary["done"]) == (0, 0, 0)
    assert set(_journal(src)) == {"pending"}
    assert _no_rejects(src)
    # The trip stops every worker: only the 3 other workers' requests already in flight follow it.
    assert crm.stats()["crm_faults_by_code"]["0x80040220"] <= 20 + 3
    crm.configure(None)  # the privilege is granted
    _loaded_after_resume(capsys, src, crm.url, 200)
    assert len(crm.records("account")) == 200


def test_breaker_zero_rejects_every_row_as_before(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crm.configure(FaultPlan(privilege_denied_after=0))
    src = _csv(tmp_path, 30)
    code, summary, _ = _import(capsys, src, crm.url, "--breaker", "0")
    assert (code, summary["rejected"], summary["done"]) == (3, 30, 0)


def test_row_specific_faults_never_trip_the_breaker(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.csv"
    rows = [f"A-{i},Acc {i},2024-02-30\n" for i in range(1, 41)]  # every date is impossible: a bad value
    src.write_text("accountnumber,name,lastusedincampaign\n" + "".join(rows), encoding="utf-8")
    code, summary, _ = _import(capsys, src, crm.url, "--breaker", "5")
    assert (code, summary["rejected"], summary.get("fatal")) == (3, 40, None)


# --- acceptance 2 -------------------------------------------------------------------------------------------


def test_privilege_lost_at_row_1000_stops_within_50_rows(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crm.configure(FaultPlan(privilege_denied_after=999))
    src = _csv(tmp_path, 1200)
    code, summary, err = _import(capsys, src, crm.url)
    assert code == 1
    assert "CircuitOpenError" in err
    assert (summary["done"], summary["rejected"], summary["in_doubt"]) == (999, 0, 0)
    assert summary["pending"] == summary["read"] - 999
    assert _journal(src)["pending"] == summary["pending"]  # none "maybe sent": resume sends them again
    assert crm.stats()["crm_faults_by_code"]["0x80040220"] <= 50
    assert len(crm.records("account")) == 999
    crm.configure(None)
    _loaded_after_resume(capsys, src, crm.url, 1200)
    assert len(crm.records("account")) == 1200  # exactly once: unkeyed rows, and no duplicate


# --- acceptance 3 -------------------------------------------------------------------------------------------


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/MSCRMServices/2007/CrmService.asmx"


def test_unreachable_url_fails_preflight_after_three_connect_attempts(vclock: VirtualClock) -> None:
    url = _closed_port_url()
    with CrmClient(url, org="Contoso", clock=vclock.clock, sleep=vclock.sleep) as client:
        with pytest.raises(PreflightError) as info:
            client.preflight("account")
        assert client.stats()["connect_attempts"] == 3
    assert info.value.cause == "unreachable"
    assert "cannot reach" in info.value.message
    assert "after 3 attempts" in info.value.message


def test_mid_run_calls_keep_the_full_retry_policy(vclock: VirtualClock) -> None:
    url = _closed_port_url()
    with CrmClient(url, org="Contoso", clock=vclock.clock, sleep=vclock.sleep) as client:
        with pytest.raises(RetryExhaustedError):
            client.create("account", {"name": "x"})
        attempts = client.stats()["connect_attempts"]
    assert attempts == DEFAULT_RETRY_POLICY.max_attempts == 8


def test_unreachable_url_exits_1_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _csv(tmp_path, 5)
    code, _, err = _import(capsys, src, _closed_port_url())
    assert code == 1
    assert "preflight: cannot reach http://127.0.0.1:" in err
    assert _journal(src) == {}

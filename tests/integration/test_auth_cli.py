"""``python -m crmload import`` with authentication flags against the mock with NTLM on."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from crmload.mock import MockCrm

REPO = Path(__file__).resolve().parents[2]
USER = "CONTOSO\\alice"
PASSWORD = "Right-horse-battery-9"


@pytest.fixture
def ntlm_crm(crm_factory: Callable[..., MockCrm]) -> MockCrm:
    return crm_factory(users={USER: PASSWORD})


def run(crm: MockCrm, tmp_path: Path, *extra: str, password: str | None) -> subprocess.CompletedProcess[str]:
    csv = tmp_path / "accounts.csv"
    lines = (REPO / "examples" / "accounts.csv").read_text(encoding="utf-8").splitlines()[:101]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CRMLOAD_PASSWORD"}
    env["PYTHONPATH"] = str(REPO)
    if password is not None:
        env["CRMLOAD_PASSWORD"] = password
    argv = [
        sys.executable, "-m", "crmload", "import", str(csv), "--entity", "account", "--url", crm.url,
        "--org", "Contoso", "--workers", "8", "--rate", "unlimited", "--no-progress", *extra,
    ]  # fmt: skip
    return subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("crmload: error:")]


def test_ntlm_import_succeeds(ntlm_crm: MockCrm, tmp_path: Path) -> None:
    proc = run(ntlm_crm, tmp_path, "--user", USER, password=PASSWORD)
    assert proc.returncode == 0, proc.stderr
    stats = ntlm_crm.stats()
    assert stats["records_by_entity"]["account"] == 96  # 100 lines, 96 rows: some fields span lines
    # One pinned connection per worker, plus the main thread's for the preflight (WhoAmI, entity check).
    assert stats["auth"]["handshakes"] == stats["connections_accepted"] <= 8 + 1


def test_wrong_password_exits_1_with_one_clear_line_and_few_attempts(
    ntlm_crm: MockCrm, tmp_path: Path
) -> None:
    proc = run(ntlm_crm, tmp_path, "--auth", "ntlm", "--user", USER, password="wrong-password")
    assert proc.returncode == 1
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "refused the NTLM credentials of CONTOSO\\alice" in lines[0]
    assert "wrong-password" not in proc.stderr + proc.stdout
    stats = ntlm_crm.stats()
    assert stats["auth"]["challenges"] <= 3
    assert stats["auth"]["handshakes"] == 0
    assert stats["records_by_entity"].get("account", 0) == 0


def test_no_password_and_no_terminal_is_a_clear_error(ntlm_crm: MockCrm, tmp_path: Path) -> None:
    proc = run(ntlm_crm, tmp_path, "--user", USER, password=None)
    assert proc.returncode == 1
    assert "CRMLOAD_PASSWORD" in error_lines(proc.stderr)[0]
    assert ntlm_crm.stats()["connections_accepted"] == 0


def test_password_in_user_flag_is_refused_and_not_echoed(ntlm_crm: MockCrm, tmp_path: Path) -> None:
    proc = run(ntlm_crm, tmp_path, "--user", USER + ":hunter2-in-argv", password=PASSWORD)
    assert proc.returncode == 1
    assert "hunter2-in-argv" not in proc.stderr + proc.stdout
    assert ntlm_crm.stats()["connections_accepted"] == 0

"""Every CLI error is one ``crmload: error:`` line with its exit code; ``--json`` prints JSON on every exit.

Issue 16 items 8 and 10, issue 14 "JSON on every exit". The mock's bind failures run in a subprocess: a
failed bind in-process would leave the server's socket to the garbage collector.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crmload.cli import main
from crmload.mock import FaultPlan, MockCrm

REPO = Path(__file__).resolve().parents[2]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("crmload: error:")]


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMLOAD_")}
    return subprocess.run(
        [sys.executable, "-m", "crmload", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
        check=False,
    )


def _one_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = _error_lines(stderr)
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.csv"
    path.write_text("accountnumber,name\nA-1,Alpha\nA-2,Beta\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRMLOAD_URL", raising=False)
    monkeypatch.delenv("CRMLOAD_ORG", raising=False)


# --- item 8: messages, not tracebacks ---------------------------------------------------------------------


def test_url_with_port_out_of_range_is_a_usage_error(
    csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import", str(csv_file), "--entity", "account", "--url", "http://127.0.0.1:99999/x"])
    err = capsys.readouterr().err
    assert code == 2
    assert "99999" in _one_error(err)
    assert not list(csv_file.parent.glob("*.sqlite")), "nothing may be created for a refused command line"


def test_mock_port_in_use_is_one_error_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = _cli("mock", "--port", str(port))
    assert done.returncode == 1
    line = _one_error(done.stderr)
    assert f"127.0.0.1:{port}" in line
    assert "in use" in line
    assert done.stdout == ""


def test_mock_port_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mock", "--port", "70000"]) == 2
    assert "70000" in _one_error(capsys.readouterr().err)


def test_mock_host_not_of_this_machine_is_one_error_line() -> None:
    nonlocal_bind = Path("/proc/sys/net/ipv4/ip_nonlocal_bind")
    if nonlocal_bind.exists() and nonlocal_bind.read_text().strip() != "0":
        pytest.skip("this host lets a socket bind any address (ip_nonlocal_bind)")
    # 192.0.2.1 is TEST-NET-1 (RFC 5737), never this host's: binding fails locally and nothing is sent.
    done = _cli("mock", "--host", "192.0.2.1", "--port", "0")
    assert done.returncode == 1
    assert "192.0.2.1" in _one_error(done.stderr)


def test_mock_fault_flag_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mock", "--port", "0", "--busy-rate", "2"]) == 2
    assert "busy_rate" in _one_error(capsys.readouterr().err)


# --- item 10: usage errors exit 2 -------------------------------------------------------------------------

USAGE_CASES: dict[str, tuple[list[str], str]] = {
    "rate 0": (["--rate", "0"], "rate"),
    "entity not a logical name": (["--entity", "bad name"], "bad name"),
    "two-character delimiter": (["--delimiter", ";;"], "delimiter"),
    "unknown encoding": (["--encoding", "nope"], "nope"),
    "workers 0": (["--workers", "0"], "workers"),
    "timeout 0": (["--timeout", "0"], "timeout"),
    "timeout three parts": (["--timeout", "1,2,3"], "timeout"),
    "missing --org": (["--url", "http://127.0.0.1:9/MSCRMServices/2007/CrmService.asmx"], "--org"),
    "resume and restart": (["--resume", "--restart"], "--restart"),
}


@pytest.mark.parametrize("case", sorted(USAGE_CASES))
def test_usage_errors_exit_2(case: str, csv_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags, named = USAGE_CASES[case]
    code = main(["import", str(csv_file), "--entity", "account", "--no-progress", *flags])
    assert code == 2
    assert named in _one_error(capsys.readouterr().err)
    assert not list(csv_file.parent.glob("*.sqlite"))
    assert not list(csv_file.parent.glob("*.rejects.csv"))


def test_missing_input_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["import", str(tmp_path / "nope.csv"), "--entity", "account"])
    assert code == 2
    assert "nope.csv" in _one_error(capsys.readouterr().err)


def test_usage_error_in_a_subprocess_is_one_line_and_exit_2(csv_file: Path) -> None:
    done = _cli("import", str(csv_file), "--entity", "account", "--rate", "0")
    assert done.returncode == 2
    _one_error(done.stderr)


def test_timeout_flag_reaches_the_client(
    csv_file: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmload import client as client_module

    seen: list[Any] = []
    real = client_module.CrmClient.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(kwargs.get("timeout"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(client_module.CrmClient, "__init__", spy)
    args = ["--url", crm.url, "--org", "Contoso", "--no-progress", "--journal", str(csv_file) + ".j"]
    assert main(["import", str(csv_file), "--entity", "account", "--timeout", "3,45", *args]) == 0
    assert main(["import", str(csv_file), "--entity", "account", "--timeout", "7", "--restart", *args]) == 0
    capsys.readouterr()
    assert [(t.connect_s, t.read_s) for t in seen] == [(3.0, 45.0), (7.0, 7.0)]


# --- issue 14: JSON on every exit -------------------------------------------------------------------------


def _json_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["import", *args, "--json", "--no-progress"])
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return code, json.loads(lines[0]), err


def _write(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "in.csv"
    path.write_text("accountnumber,name,lastusedincampaign\n" + rows, encoding="utf-8")
    return path


def test_json_on_exit_0(tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path, "A-1,Alpha,2024-01-02\n")
    code, obj, _ = _json_run(capsys, str(src), "--entity", "account", "--url", crm.url, "--org", "Contoso")
    assert (code, obj["exit_code"], obj["done"], obj["fatal"]) == (0, 0, 1, None)


def test_json_on_exit_3(tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path, "A-1,Alpha,2024-01-02\nA-2,Beta,2024-02-30\n")
    code, obj, _ = _json_run(capsys, str(src), "--entity", "account", "--url", crm.url, "--org", "Contoso")
    assert (code, obj["exit_code"], obj["done"], obj["rejected"]) == (3, 3, 1, 1)


def test_json_on_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path, "A-1,Alpha,2024-01-02\n")
    code, obj, err = _json_run(capsys, str(src), "--entity", "account", "--rate", "0")
    assert (code, obj["exit_code"], obj["command"]) == (2, 2, "import")
    assert obj["fatal"]
    assert "rate" in obj["fatal"]
    assert (obj["read"], obj["done"], obj["pending"]) == (0, 0, 0)
    assert _error_lines(err), "the human error stays on stderr"
    assert "{" not in err, "the JSON goes to stdout only"


def test_json_on_exit_2_from_a_missing_required_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path, "A-1,Alpha,2024-01-02\n")
    code, obj, _ = _json_run(capsys, str(src))  # no --entity: argparse itself refuses
    assert (code, obj["exit_code"]) == (2, 2)
    assert "--entity" in obj["fatal"]


def test_json_on_exit_1_before_the_run(
    tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path, "A-1,Alpha,2024-01-02\n")
    common = [str(src), "--entity", "account", "--url", crm.url, "--org", "Contoso"]
    assert _json_run(capsys, *common)[0] == 0
    code, obj, err = _json_run(capsys, *common)  # the journal refuses a second plain run
    assert (code, obj["exit_code"]) == (1, 1)
    assert obj["fatal"]
    assert "--resume" in obj["fatal"]
    assert len(_error_lines(err)) == 1


def test_json_on_exit_1_when_the_run_stops(
    tmp_path: Path, crm_factory: Callable[..., MockCrm], capsys: pytest.CaptureFixture[str]
) -> None:
    server = crm_factory(users={"CONTOSO\\alice": "right"})  # no credentials given: every call is refused
    src = _write(tmp_path, "".join(f"A-{i},N{i},2024-01-02\n" for i in range(5)))
    code, obj, err = _json_run(
        capsys, str(src), "--entity", "account", "--url", server.url, "--org", "Contoso"
    )
    assert (code, obj["exit_code"]) == (1, 1)
    assert obj["fatal"]
    assert obj["done"] == 0
    assert obj["rejected"] == 0
    assert len(_error_lines(err)) == 1
    assert server.records("account") == []


def test_json_error_object_in_a_subprocess(tmp_path: Path) -> None:
    src = _write(tmp_path, "A-1,Alpha,2024-01-02\n")
    done = _cli("import", str(src), "--entity", "account", "--encoding", "nope", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["exit_code"] == 2
    _one_error(done.stderr)


# --- item 13: -v shows why a run is slow ------------------------------------------------------------------


def test_verbose_run_logs_each_retry_with_cause_and_wait(
    tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str]
) -> None:
    crm.configure(FaultPlan(busy_rate=0.5, seed=11))
    src = _write(tmp_path, "".join(f"A-{i},N{i},2024-01-02\n" for i in range(10)))
    flags = ["--key", "accountnumber", "-v", "--url", crm.url, "--org", "Contoso", "--no-progress"]
    code = main(["import", str(src), "--entity", "account", *flags])
    err = capsys.readouterr().err
    busy = crm.stats()["faults_by_kind"].get("busy", 0)
    assert code == 0
    assert busy > 0
    retries = [line for line in err.splitlines() if "INFO crmload.retry: retrying after busy" in line]
    assert len(retries) == busy, err
    assert all("waiting" in line and " s)" in line for line in retries)


def test_timeout_flag_bounds_a_server_that_does_not_answer(
    tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str]
) -> None:
    crm.configure(FaultPlan(latency_ms=1500))  # answers long after the 0.2 s read timeout
    src = _write(tmp_path, "A-1,Alpha,2024-01-02\nA-2,Beta,2024-01-02\n")
    flags = [
        "--url",
        crm.url,
        "--org",
        "Contoso",
        "--workers",
        "1",
        "--rate",
        "unlimited",
        "--timeout",
        "5,0.2",
        "--no-preflight",  # the loader's own handling is under test; the preflight would stop the run first
    ]
    code, obj, _ = _json_run(capsys, str(src), "--entity", "account", *flags)
    # Unkeyed creates whose answer never came are in doubt, not waited on for the default 120 s each.
    assert (code, obj["in_doubt"], obj["done"]) == (3, 2, 0)
    assert obj["client"]["errors_by_type"].get("ResponseLostError") == 2

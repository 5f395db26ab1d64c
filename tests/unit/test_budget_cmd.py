"""``python -m crmload budget``: human and JSON output, --help with an example, exit 0."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from crmload.cli import main


def test_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budget", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    budget = report["budget"]
    assert budget["per_second"] == pytest.approx(budget["ports"] / budget["time_wait_s"], abs=0.01)
    assert report["crmload_default_budget"]["per_second"] == 16.57
    assert report["system"] == platform.system()
    assert report["tuning"]["commands"]
    if platform.system() == "Linux":
        assert budget["time_wait_s"] == 60.0
        assert isinstance(report["time_wait_sockets"], int)
        assert any("sysctl" in c for c in report["tuning"]["commands"])


def test_human_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budget"]) == 0
    out = capsys.readouterr().out
    for needle in ("ephemeral ports", "TIME_WAIT", "new connections/s", "TIME_WAIT sockets", "16.57/s"):
        assert needle in out


def test_windows_plan_from_another_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budget", "--system", "Windows", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    if platform.system() != "Windows":
        assert report["read_from_host"] is False
        assert (report["budget"]["ports"], report["budget"]["time_wait_s"]) == (16384, 120.0)
        assert report["time_wait_sockets"] is None
    text = "\n".join(report["tuning"]["commands"])
    assert "MaxUserPort" in text
    assert "65534" in text
    assert "TcpTimedWaitDelay" in text


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["budget", "--help"])
    assert info.value.code == 0
    assert "python -m crmload budget --json" in capsys.readouterr().out


def test_runs_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crmload", "budget"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "new connections/s" in proc.stdout

"""Crash and resume: an import subprocess is SIGKILLed at several points, then resumed until it finishes.

The mock runs as its own process (``python -m crmload mock --port 0``). Every keyed row must end exactly once
in the mock's store, and ``done + rejected + in doubt == rows read`` must hold at the end.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmload.load import key_id

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

ROWS = 300


@pytest.fixture
def mock_process() -> Iterator[str]:
    """A mock CRM in its own process, with latency so that kills land mid-call; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmload", "mock", "--port", "0", "--latency-ms", "15"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _done(journal: Path) -> int:
    if not journal.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=0.1)
        try:
            return int(db.execute("SELECT count(*) FROM rows WHERE state = 'done'").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _records(url: str) -> list[dict[str, str]]:
    base = url.split("/MSCRMServices", maxsplit=1)[0]
    with urllib.request.urlopen(f"{base}/_mock/records/account", timeout=10) as resp:  # noqa: S310 - 127.0.0.1
        data = json.loads(resp.read())
    return data["records"] if isinstance(data, dict) else data


def test_sigkill_at_several_points_then_resume_loads_each_keyed_row_once(
    mock_process: str, tmp_path: Path
) -> None:
    src = tmp_path / "accounts.csv"
    src.write_text(
        "accountnumber,name,revenue\n"
        + "".join(f'K-{i},"Name {i}, Ltd",{i}.25\n' for i in range(1, ROWS + 1)),
        encoding="utf-8",
    )
    journal = tmp_path / "run.sqlite"
    base = [
        sys.executable,
        "-m",
        "crmload",
        "import",
        str(src),
        "--entity",
        "account",
        "--key",
        "accountnumber",
        "--url",
        mock_process,
        "--org",
        "Contoso",
        "--journal",
        str(journal),
        "--rate",
        "unlimited",
        "--workers",
        "4",
        "--json",
        "--no-progress",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMLOAD_")}
    kills = 0
    for threshold in (20, 110, 220):
        cmd = base + (["--resume"] if journal.exists() else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _done(journal) < threshold and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "the run finished before it could be killed: raise ROWS or the mock's latency"

    summary: dict[str, int] = {}
    for _ in range(5):
        out = subprocess.run(
            [*base, "--resume"], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        summary = json.loads(out.stdout)
        if out.returncode == 0:
            break
    assert summary["exit_code"] == 0
    assert summary["read"] == ROWS
    assert summary["done"] + summary["rejected"] + summary["in_doubt"] == summary["read"]
    assert summary["done"] == ROWS

    ids = [r["accountid"] for r in _records(mock_process)]
    assert len(ids) == ROWS  # exactly once: no duplicates, nothing missing
    assert set(ids) == {str(key_id("account", f"K-{i}")) for i in range(1, ROWS + 1)}


def test_sigkill_on_unkeyed_creates_never_resends_what_may_have_landed(
    mock_process: str, tmp_path: Path
) -> None:
    src = tmp_path / "plain.csv"
    src.write_text("name\n" + "".join(f"Plain {i}\n" for i in range(1, ROWS + 1)), encoding="utf-8")
    journal = tmp_path / "plain.sqlite"
    base = [
        sys.executable,
        "-m",
        "crmload",
        "import",
        str(src),
        "--entity",
        "account",
        "--url",
        mock_process,
        "--org",
        "Contoso",
        "--journal",
        str(journal),
        "--rate",
        "unlimited",
        "--workers",
        "4",
        "--json",
        "--no-progress",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMLOAD_")}
    proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while proc.poll() is None and _done(journal) < 100 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = subprocess.run(
        [*base, "--resume"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    summary = json.loads(out.stdout)
    assert summary["read"] == ROWS
    assert summary["done"] + summary["rejected"] + summary["in_doubt"] == ROWS
    assert out.returncode == (3 if summary["in_doubt"] else 0)
    names = [r["name"] for r in _records(mock_process)]
    assert len(names) == len(set(names))  # nothing was sent twice
    # Every done row is there; an in-doubt row may or may not be.
    assert summary["done"] <= len(names) <= summary["done"] + summary["in_doubt"]
    assert summary["in_doubt_lines"] == sorted(summary["in_doubt_lines"])

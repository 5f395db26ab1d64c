"""Sharded imports (issue 13 acceptance 4) and ``crmload status``.

Four ``crmload import --shard i/4`` processes split one 40,000-row file against one ``crmload mock`` process:
the mock's store must hold every row exactly once, and ``status`` must merge the four journals into an
equation that holds, with every record of the file in exactly one shard's journal. The smaller tests run the
CLI in-process against the session's mock.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmload.cli import main
from crmload.load import key_id
from crmload.mock import MockCrm

ROWS = 40_000
SHARDS = 4


@pytest.fixture
def mock_process() -> Iterator[str]:
    """``crmload mock`` in its own process; yields its Organization-service URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmload", "mock", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        assert url.startswith("http://127.0.0.1:"), url
        yield url.split("/MSCRMServices", maxsplit=1)[0] + "/XRMServices/2011/Organization.svc/web"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _records(url: str) -> list[dict[str, str]]:
    base = url.split("/XRMServices", maxsplit=1)[0]
    with urllib.request.urlopen(f"{base}/_mock/records/account", timeout=30) as resp:  # noqa: S310 - 127.0.0.1
        data = json.loads(resp.read())
    return data["records"] if isinstance(data, dict) else data  # type: ignore[no-any-return]


def _write(path: Path, rows: int, *, keyed: bool = True) -> None:
    head = "accountnumber,name\n" if keyed else "name,telephone1\n"
    body = "".join(f"A-{i},Name {i}\n" if keyed else f"Name {i},555-{i}\n" for i in range(1, rows + 1))
    path.write_text(head + body, encoding="utf-8")


def _status(capsys: pytest.CaptureFixture[str], *journals: Path) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = main(["status", "--json", *map(str, journals)])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_four_shard_processes_load_each_row_once(
    mock_process: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "accounts.csv"
    _write(src, ROWS)
    argv = [
        sys.executable,
        "-m",
        "crmload",
        "import",
        str(src),
        "--entity",
        "account",
        "--key",
        "accountnumber",
    ]
    argv += ["--url", mock_process, "--rate", "unlimited", "--batch-size", "500", "--no-progress", "--json"]
    procs = [
        subprocess.Popen(
            [*argv, "--shard", f"{i}/{SHARDS}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(1, SHARDS + 1)
    ]
    summaries = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        summaries.append(json.loads(out))

    # The judge: the mock's store. Every key exactly once, at its deterministic id.
    records = _records(mock_process)
    numbers = Counter(r["accountnumber"] for r in records)
    assert len(records) == ROWS
    assert set(numbers) == {f"A-{i}" for i in range(1, ROWS + 1)}
    assert max(numbers.values()) == 1
    assert {r["accountid"] for r in records} == {str(key_id("account", f"A-{i}")) for i in range(1, ROWS + 1)}

    # Each shard read only its own rows and counted the others' apart.
    for i, s in enumerate(summaries, 1):
        assert s["shard"] == f"{i}/{SHARDS}"
        assert s["balanced"]
        assert s["read"] == s["done"]
        assert s["read"] + s["other_shards"] == ROWS
        assert 0 < s["read"] < ROWS / 2  # a hash that sends most rows to one shard is no split

    journals = sorted(tmp_path.glob(f"accounts.csv.shard-*-of-{SHARDS}.crmload.sqlite"))
    assert len(journals) == SHARDS
    code, status = _status(capsys, *journals)
    assert code == 0
    assert status["complete"]
    assert status["balanced"]
    assert status["read"] == status["done"] == status["source_rows"] == ROWS
    assert status["equation"] == f"{ROWS} done + 0 rejected + 0 in doubt == {ROWS} rows read"
    assert [j["read"] for j in status["journals"]] == [s["read"] for s in summaries]  # type: ignore[union-attr]
    assert status["shards"] == {
        "kind": "hash",
        "count": SHARDS,
        "present": [1, 2, 3, 4],
        "missing": [],
        "repeated": [],
    }


def _done_rows(journal: Path) -> int:
    try:
        with sqlite3.connect(f"{journal.resolve().as_uri()}?mode=ro", uri=True, timeout=0.1) as db:
            return int(db.execute("SELECT count(*) FROM rows WHERE state = 'done'").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_shard_resumes_and_status_sees_it_unfinished_until_then(
    mock_process: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = 2_000
    src = tmp_path / "accounts.csv"
    _write(src, rows)
    argv = [
        sys.executable,
        "-m",
        "crmload",
        "import",
        str(src),
        "--entity",
        "account",
        "--key",
        "accountnumber",
    ]
    argv += [
        "--url",
        mock_process,
        "--rate",
        "20",
        "--batch-size",
        "10",
        "--no-progress",
        "-q",
    ]  # >= 5 s to run
    journals = [tmp_path / f"accounts.csv.shard-{i}-of-2.crmload.sqlite" for i in (1, 2)]
    victim = subprocess.Popen([*argv, "--shard", "1/2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _done_rows(journals[0]) < 100 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.kill()
    victim.wait()
    assert subprocess.run([*argv, "--shard", "2/2", "--rate", "unlimited"], check=False).returncode == 0

    code, status = _status(capsys, *journals)
    assert code == 1
    assert status["unfinished"] == ["1/2"]  # its reader never got to the end: no read.source_rows yet
    assert not status["complete"]

    resumed = subprocess.run([*argv, "--shard", "1/2", "--rate", "unlimited", "--resume"], check=False)
    assert resumed.returncode == 0
    code, status = _status(capsys, *journals)
    assert code == 0
    assert status["read"] == status["done"] == status["source_rows"] == rows
    numbers = Counter(r["accountnumber"] for r in _records(mock_process))
    assert len(numbers) == rows
    assert max(numbers.values()) == 1


def _import(src: Path, crm: MockCrm, *extra: str) -> int:
    argv = ["import", str(src), "--entity", "account", "--url", crm.url2011, "--rate", "unlimited"]
    return main([*argv, "--no-progress", "-q", *extra])


def test_an_unkeyed_file_shards_by_line(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "plain.csv"
    _write(src, 301, keyed=False)
    for i in (1, 2, 3):
        assert _import(src, crm, "--shard", f"{i}/3") == 0
    names = Counter(r["name"] for r in crm.records("account"))
    assert names == Counter(f"Name {i}" for i in range(1, 302))
    journals = [tmp_path / f"plain.csv.shard-{i}-of-3.crmload.sqlite" for i in (1, 2, 3)]
    for i, path in enumerate(journals, 1):
        with sqlite3.connect(path) as db:
            lines = [line for (line,) in db.execute("SELECT line FROM rows")]
        assert {line % 3 for line in lines} == {i - 1}  # line numbers decide, the header being line 1
    code, status = _status(capsys, *journals)
    assert code == 0
    assert status["source_rows"] == status["read"] == 301


def test_duplicate_keys_meet_in_one_shard(crm: MockCrm, tmp_path: Path) -> None:
    """All rows with one key hash to one shard, so "the first row wins" holds across shards: one reject."""
    src = tmp_path / "dups.csv"
    src.write_text(
        "accountnumber,name\n" + "".join(f"K-{i % 50},Name {i}\n" for i in range(100)), encoding="utf-8"
    )
    for i in (1, 2):
        assert _import(src, crm, "--key", "accountnumber", "--shard", f"{i}/2") == 3  # rejects: exit 3
    records = crm.records("account")
    assert sorted(r["accountnumber"] for r in records) == sorted(f"K-{i}" for i in range(50))
    assert {r["name"] for r in records} == {f"Name {i}" for i in range(50)}  # the first row of each key
    rejected = 0
    for i in (1, 2):
        with sqlite3.connect(tmp_path / f"dups.csv.shard-{i}-of-2.crmload.sqlite") as db:
            rejected += db.execute("SELECT count(*) FROM rows WHERE state = 'rejected'").fetchone()[0]
        assert (tmp_path / f"dups.shard-{i}-of-2.rejects.csv").is_file()  # per-shard default names
    assert rejected == 50


def test_a_resume_with_another_shard_is_refused(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.csv"
    _write(src, 40)
    journal = tmp_path / "run.sqlite"
    assert _import(src, crm, "--key", "accountnumber", "--shard", "1/2", "--journal", str(journal)) == 0
    loaded = len(crm.records("account"))
    capsys.readouterr()
    for other in (["--shard", "2/2"], []):
        code = _import(src, crm, "--key", "accountnumber", "--journal", str(journal), "--resume", *other)
        assert code == 1
        err = capsys.readouterr().err
        assert "holds shard 1/2" in err
        assert ("this run is shard 2/2" if other else "this run is an unsharded run") in err
    assert len(crm.records("account")) == loaded  # nothing was sent
    assert (
        _import(src, crm, "--key", "accountnumber", "--shard", "1/2", "--journal", str(journal), "--resume")
        == 0
    )


def test_status_finds_missing_shards_and_mixed_runs(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.csv"
    _write(src, 60)
    for i in (1, 2, 3):
        assert _import(src, crm, "--key", "accountnumber", "--shard", f"{i}/3") == 0
    j = [tmp_path / f"a.csv.shard-{i}-of-3.crmload.sqlite" for i in (1, 2, 3)]
    code, status = _status(capsys, j[0], j[2])
    assert code == 1
    assert status["balanced"]
    assert not status["complete"]
    assert status["problems"] == ["shards missing: 2/3"]

    copy = tmp_path / "copy.sqlite"  # the same path twice is one journal; a copy is a shard given twice
    copy.write_bytes(j[1].read_bytes())
    code, status = _status(capsys, j[0], j[1], copy, j[2])
    assert code == 1
    assert "shards given twice: 2/3" in status["problems"]  # type: ignore[operator]

    other = tmp_path / "b.csv"
    _write(other, 60)
    assert _import(other, crm, "--key", "accountnumber", "--shard", "2/3", "--mode", "upsert") == 0
    code, status = _status(capsys, j[0], tmp_path / "b.csv.shard-2-of-3.crmload.sqlite", j[2])
    assert code == 1
    assert any("another run" in p and "mode 'create' vs 'upsert'" in p for p in status["problems"])  # type: ignore[union-attr]


def test_status_of_one_plain_run_and_of_a_stopped_one(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.csv"
    _write(src, 30)
    src.write_text(src.read_text(encoding="utf-8") + "A-31,bad,extra\n", encoding="utf-8")
    assert _import(src, crm, "--key", "accountnumber") == 3  # the ragged row is rejected
    journal = tmp_path / "a.csv.crmload.sqlite"
    capsys.readouterr()
    assert main(["status", str(journal)]) == 3
    text = capsys.readouterr().out
    assert "30 done + 1 rejected + 0 in doubt == 31 rows read" in text
    assert "31 rows read of the 31 the input held" in text

    # A journal whose reader never got to the end (its meta has no read.source_rows) is unfinished.
    with sqlite3.connect(journal) as db:
        db.execute("DELETE FROM meta WHERE k = 'read.source_rows'")
        db.execute("UPDATE rows SET state = 'pending' WHERE line = 5")
    code, status = _status(capsys, journal)
    assert code == 1
    assert not status["balanced"]
    assert status["unfinished"] == [str(journal)]
    assert "(1 pending: run again with --resume)" in str(status["equation"])


def test_status_of_no_journal_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(tmp_path / "missing.sqlite")]) == 1
    assert "no journal at" in capsys.readouterr().err
    bogus = tmp_path / "x.sqlite"
    bogus.write_bytes(b"not a database at all" * 10)
    assert main(["status", "--json", str(bogus)]) == 1
    assert json.loads(capsys.readouterr().out)["exit_code"] == 1

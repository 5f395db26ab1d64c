"""The journal under hostile conditions (issues 16 #1 and 14): concurrent runs, SIGKILLed holders, a read-only
directory, a full disk, a truncated file, and moving a run to a corrected URL.

Imports run as ``python -m crmload import`` subprocesses against the session's mock (a real server in this
process), so that locks, kills and resource limits are those of real separate processes. Each case checks
what can be counted: exit codes, the ``crmload: error:`` line, journal rows and the mock's store.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crmload.errors import JournalBusyError
from crmload.load.journal import Journal, Target
from crmload.load.runlock import lock_path, read_info
from crmload.mock import MockCrm

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL, RLIMIT_FSIZE and mounts")

REPO = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("CRMLOAD_")}


def _gen(tmp_path: Path, rows: int, name: str = "conc.csv") -> Path:
    src = tmp_path / name
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen_csv.py"), str(rows), str(src)], check=True)
    return src


def _cmd(src: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "crmload",
        "import",
        str(src),
        "--entity",
        "account",
        "--url",
        url,
        "--org",
        "Contoso",
        "--no-progress",
        *extra,
    ]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300, check=False)


def _states(journal: Path) -> dict[str, int]:
    """Rows per state, read without taking the run lock (a reader never needs it)."""
    if not journal.exists():
        return {}
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        try:
            return dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return {}


def _lines(journal: Path, state: str) -> set[int]:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return {int(r[0]) for r in db.execute("SELECT line FROM rows WHERE state = ?", (state,))}
    finally:
        db.close()


def _error_line(stderr: str) -> str:
    """The one ``crmload: error:`` line; there must be no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("crmload: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _kill_when_done(cmd: list[str], journal: Path, done: int) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.monotonic() + 60
    while proc.poll() is None and _states(journal).get("done", 0) < done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the first run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


# -- issue 16 #1: two --resume runs at once ------------------------------------------------------------------
@pytest.mark.slow
def test_two_resumes_at_once_after_sigkill_send_each_row_once(crm: MockCrm, tmp_path: Path) -> None:
    # The scenario: 3000 unkeyed rows at --rate 100, kill -9 mid-run, then two --resume at once.
    src = _gen(tmp_path, 3000)
    journal = Path(f"{src}.crmload.sqlite")
    run = _cmd(src, crm.url, "--rate", "100")
    _kill_when_done(run, journal, 100)
    assert lock_path(journal).exists()  # left behind by the killed run: it must not block what follows

    resumes = [
        subprocess.Popen(
            [*run, "--resume", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in resumes]
    codes = [p.returncode for p in resumes]
    assert sorted(c == 1 for c in codes) == [False, True], (codes, [e for _, e in outs])
    lost = codes.index(1)
    won = 1 - lost
    refusal = _error_line(outs[lost][1])
    assert f"pid {resumes[won].pid} " in refusal
    assert "in use by another run" in refusal
    assert str(journal) in refusal

    summary = json.loads(outs[won][0])
    assert codes[won] == (3 if summary["in_doubt"] else 0)
    assert summary["read"] == 3000
    assert summary["done"] + summary["rejected"] + summary["in_doubt"] == 3000
    states = _states(journal)
    assert states.get("pending", 0) == 0
    assert states.get("done", 0) + states.get("rejected", 0) + states.get("in_doubt", 0) == 3000

    numbers = collections.Counter(r["accountnumber"] for r in crm.records("account"))
    assert max(numbers.values()) == 1  # no duplicate
    # gen_csv numbers rows A-000001.. from line 2; every done row is there, in-doubt ones may be.
    done = {f"A-{line - 1:06d}" for line in _lines(journal, "done")}
    maybe = {f"A-{line - 1:06d}" for line in _lines(journal, "in_doubt")}
    assert done <= set(numbers) <= done | maybe
    assert not lock_path(journal).exists()  # the winner released and removed it


def test_a_plain_second_run_during_a_live_one_is_refused_not_sent_to_resume(
    crm: MockCrm, tmp_path: Path
) -> None:
    # Today's "already imported ... use --resume" led users straight into issue 16 #1.
    src = _gen(tmp_path, 1000)
    journal = Path(f"{src}.crmload.sqlite")
    run = _cmd(src, crm.url, "--rate", "50")
    live = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.monotonic() + 60
        while _states(journal).get("done", 0) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        for extra in ([], ["--restart"]):
            second = _run([*run, *extra])
            assert second.returncode == 1
            line = _error_line(second.stderr)
            assert f"pid {live.pid} " in line
            assert "--resume" not in line
        assert live.poll() is None
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    assert _states(journal).get("done", 0) >= 5  # --restart did not erase the live run's journal


def test_sigkilled_holder_does_not_block_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    target = Target(url="http://crm/x.asmx", org="Contoso", entity="account", mode="create")
    hold = (
        "import sys, time\n"
        "from crmload.load.journal import Journal, Target\n"
        "j = Journal.open(sys.argv[1], Target(url='http://crm/x.asmx', org='Contoso', entity='account',"
        " mode='create'))\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(JournalBusyError, match=f"pid {proc.pid} ") as caught:
            Journal.open(path, target, resume=True)
        assert caught.value.pid == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert read_info(lock_path(path))["pid"] == proc.pid  # the file survives its holder; its lock does not
    j = Journal.open(path, target, resume=True)
    assert read_info(lock_path(path))["pid"] == os.getpid()
    j.close()


# -- a read-only directory -----------------------------------------------------------------------------------
def _read_only(directory: Path, cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with ``directory`` read-only: chmod for a user, a private read-only bind mount for root."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            return _run(cmd)
        finally:
            directory.chmod(0o700)
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, str(directory), "true"], check=False)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip("root here cannot make a read-only mount (unshare -m)")
    return _run(["unshare", "-m", "sh", "-c", script, str(directory), *cmd])


def test_read_only_directory_is_a_clear_error_and_keeps_done_rows(crm: MockCrm, tmp_path: Path) -> None:
    src = _gen(tmp_path, 40, "small.csv")
    jdir = tmp_path / "jdir"
    jdir.mkdir()
    journal = jdir / "run.sqlite"
    cmd = _cmd(src, crm.url, "--key", "accountnumber", "--rate", "unlimited", "--journal", str(journal))
    first = _run(cmd)
    assert first.returncode == 0, first.stderr
    before = journal.read_bytes()

    again = _read_only(jdir, [*cmd, "--resume"])
    assert again.returncode == 1
    line = _error_line(again.stderr)
    assert str(journal) in line
    assert "writable" in line
    assert journal.read_bytes() == before
    assert _states(journal) == {"done": 40}

    fresh = _read_only(jdir, _cmd(src, crm.url, "--rate", "unlimited", "--journal", str(jdir / "new.sqlite")))
    assert fresh.returncode == 1
    assert str(jdir / "new.sqlite") in _error_line(fresh.stderr)
    assert len(crm.records("account")) == 40  # the refused runs sent nothing


# -- a full disk ---------------------------------------------------------------------------------------------
def _file_size_limit(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_full_disk_mid_run_is_fatal_with_rows_pending_and_resume_loads_each_row_once(
    crm: MockCrm, tmp_path: Path
) -> None:
    src = _gen(tmp_path, 3000)
    journal = tmp_path / "run.sqlite"
    cmd = _cmd(src, crm.url, "--key", "accountnumber", "--rate", "unlimited", "--journal", str(journal))
    full = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        check=False,
        preexec_fn=lambda: _file_size_limit(200_000),
    )
    assert full.returncode == 1, full.stderr
    line = _error_line(full.stderr)
    assert str(journal) in line
    assert "disk" in line
    states = _states(journal)
    assert states.get("done", 0) > 0
    assert states.get("pending", 0) > 0
    assert not lock_path(journal).exists()

    # Space freed (no limit): --resume finishes, and every row is in CRM exactly once.
    done = _run([*cmd, "--resume", "--json"])
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["read"], summary["done"]) == (3000, 3000)
    numbers = collections.Counter(r["accountnumber"] for r in crm.records("account"))
    assert (len(numbers), max(numbers.values())) == (3000, 1)


_TMPFS_SCRIPT = """
D="$1"; OUT="$2"; shift 2
mount -t tmpfs -o size=320k tmpfs "$D" || exit 90
"$@" >"$OUT/1.out" 2>"$OUT/1.err"; echo $? >"$OUT/1.rc"
mkdir "$OUT/after1" && cp "$D"/run.sqlite* "$OUT/after1/"
mount -o remount,size=64m "$D" || exit 91
"$@" --resume --json >"$OUT/2.out" 2>"$OUT/2.err"; echo $? >"$OUT/2.rc"
"""


def test_full_tmpfs_mid_run_then_space_freed_resume_loads_each_row_once(crm: MockCrm, tmp_path: Path) -> None:
    # A real ENOSPC ("database or disk is full"), where RLIMIT_FSIZE above gives EFBIG ("disk I/O error").
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private tmpfs")
    if subprocess.run(["unshare", "-m", "true"], check=False).returncode != 0:
        pytest.skip("unshare -m is not allowed here")
    src = _gen(tmp_path, 3000)
    disk = tmp_path / "disk"
    out = tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    journal = disk / "run.sqlite"
    cmd = _cmd(src, crm.url, "--key", "accountnumber", "--rate", "unlimited", "--journal", str(journal))
    sh = subprocess.run(
        ["unshare", "-m", "sh", "-c", _TMPFS_SCRIPT, "sh", str(disk), str(out), *cmd],
        env=ENV,
        timeout=300,
        check=False,
    )
    if sh.returncode in (90, 91):
        pytest.skip("tmpfs cannot be mounted here")
    assert (out / "1.rc").read_text().strip() == "1", (out / "1.err").read_text()
    line = _error_line((out / "1.err").read_text())
    assert str(journal) in line
    assert "full" in line
    db = sqlite3.connect(out / "after1" / "run.sqlite")
    states = dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
    db.close()
    assert states.get("done", 0) > 0
    assert states.get("pending", 0) > 0

    assert (out / "2.rc").read_text().strip() == "0", (out / "2.err").read_text()
    summary = json.loads((out / "2.out").read_text())
    assert (summary["read"], summary["done"]) == (3000, 3000)
    numbers = collections.Counter(r["accountnumber"] for r in crm.records("account"))
    assert (len(numbers), max(numbers.values())) == (3000, 1)


# -- a truncated journal -------------------------------------------------------------------------------------
def test_truncated_journal_is_refused_naming_it(crm: MockCrm, tmp_path: Path) -> None:
    src = _gen(tmp_path, 3000)
    journal = tmp_path / "run.sqlite"
    cmd = _cmd(src, crm.url, "--key", "accountnumber", "--rate", "unlimited", "--journal", str(journal))
    assert _run(cmd).returncode == 0
    os.truncate(journal, journal.stat().st_size // 2)
    cut = journal.read_bytes()
    again = _run([*cmd, "--resume"])
    assert again.returncode == 1
    line = _error_line(again.stderr)
    assert str(journal) in line
    assert "damaged" in line
    assert journal.read_bytes() == cut  # kept for inspection, not rewritten
    assert len(crm.records("account")) == 3000  # nothing sent again


# -- issue 16 #5b: moving a run to a corrected URL -----------------------------------------------------------
def test_resume_with_a_corrected_url_moves_the_run(crm: MockCrm, tmp_path: Path) -> None:
    src = _gen(tmp_path, 20, "small.csv")
    journal = tmp_path / "run.sqlite"
    wrong = crm.url.replace("/MSCRMServices/", "/Wrong/")
    opts = ("--key", "accountnumber", "--rate", "unlimited", "--journal", str(journal))
    first = _run(_cmd(src, wrong, *opts, "--no-preflight"))  # the preflight would journal nothing
    assert _states(journal).get("done", 0) == 0  # nothing landed at the wrong URL
    assert first.returncode in (1, 3)

    moved = _run(_cmd(src, crm.url, *opts, "--resume", "--json"))
    assert moved.returncode != 1, moved.stderr
    assert "run moved from" in moved.stderr
    db = sqlite3.connect(journal)
    meta = dict(db.execute("SELECT k, v FROM meta").fetchall())
    db.close()
    assert meta["target.url"] == crm.url
    assert json.loads(meta["retarget.1"])["to"] == crm.url
    summary = json.loads(moved.stdout)
    assert len(crm.records("account")) == summary["done"]  # whatever was still to send went to the new URL


def test_moving_a_run_with_done_rows_needs_retarget(crm: MockCrm, tmp_path: Path) -> None:
    src = _gen(tmp_path, 20, "small.csv")
    journal = tmp_path / "run.sqlite"
    opts = ("--key", "accountnumber", "--rate", "unlimited", "--journal", str(journal))
    assert _run(_cmd(src, crm.url, *opts)).returncode == 0
    other = crm.url.replace("127.0.0.1", "localhost")

    refused = _run(_cmd(src, other, *opts, "--resume"))
    assert refused.returncode == 1
    assert "--retarget" in _error_line(refused.stderr)
    usage = _run(_cmd(src, other, *opts, "--retarget"))
    assert usage.returncode == 2
    forced = _run(_cmd(src, other, *opts, "--resume", "--retarget"))
    assert forced.returncode == 0, forced.stderr
    assert "run moved from" in forced.stderr
    assert len(crm.records("account")) == 20

"""Journal: file mode, WAL, states, refusal of a second run, resume, restart, batched commits."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from crmload.errors import JournalError
from crmload.load.journal import Journal, Target, file_identity, public_url

T = Target(url="http://crm/x.asmx", org="Contoso", entity="account", mode="create", key="k")


def _src(tmp_path: Path, text: str = "a\n1\n") -> Path:
    p = tmp_path / "in.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_file_is_0600_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal.open(path, T, file_identity(_src(tmp_path)))
    j.add_pending([(2, "A", None)])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    wal = Path(f"{path}-wal")
    assert wal.exists()
    assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    j.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_states_counts_and_equation_inputs(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite", T)
    j.add_pending([(2, "A", "id-a"), (3, "B", "id-b"), (4, None, None)])
    j.reject(5, None, "map", "bad date")
    j.settle(2, "done", outcome="created")
    j.settle(3, "done", outcome="already_present")
    j.settle(4, "in_doubt", error="lost")
    assert j.counts() == {
        "pending": 0,
        "done": 2,
        "rejected": 1,
        "in_doubt": 1,
        "read": 4,
        "already_present": 1,
    }
    assert j.states(2, 5) == {2: ("done", 0), 3: ("done", 0), 4: ("in_doubt", 0), 5: ("rejected", 0)}
    assert list(j.rows("rejected")) == [(5, None, "bad date")]
    with pytest.raises(ValueError, match="unknown journal state"):
        j.settle(2, "finished")
    j.close()


def test_second_run_is_refused_without_resume_or_restart(tmp_path: Path) -> None:
    src = file_identity(_src(tmp_path))
    path = tmp_path / "j.sqlite"
    Journal.open(path, T, src).close()
    with pytest.raises(JournalError, match="use --resume to continue, or --restart to begin again"):
        Journal.open(path, T, src)
    Journal.open(path, T, src, resume=True).close()
    j = Journal.open(path, T, src, restart=True)
    assert j.counts()["read"] == 0
    j.close()


def test_other_target_or_changed_file_is_refused(tmp_path: Path) -> None:
    p = _src(tmp_path)
    path = tmp_path / "j.sqlite"
    Journal.open(path, T, file_identity(p)).close()
    other = Target(url="http://crm/x.asmx", org="Fabrikam", entity="account", mode="create", key="k")
    with pytest.raises(JournalError, match="belongs to another run"):
        Journal.open(path, other, file_identity(p), resume=True)
    p.write_text("a\n1\n2\n", encoding="utf-8")
    with pytest.raises(JournalError, match="input file changed"):
        Journal.open(path, T, file_identity(p), resume=True)


def test_identity_ignores_path_and_mtime(tmp_path: Path) -> None:
    a = _src(tmp_path)
    b = tmp_path / "copy.csv"
    b.write_bytes(a.read_bytes())
    assert file_identity(a).same_content(file_identity(b))


def test_results_commit_in_batches_but_pending_and_durable_attempts_at_once(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "j.sqlite"
    j = Journal(path, commit_every=3, commit_interval_s=10.0, clock=lambda: now[0])
    j.add_pending([(n, None, None) for n in range(1, 6)])
    other = sqlite3.connect(path)

    def seen_done() -> int:
        return int(other.execute("SELECT count(*) FROM rows WHERE state='done'").fetchone()[0])

    j.settle(1, "done")
    j.settle(2, "done")
    assert seen_done() == 0  # batched: not yet committed
    j.settle(3, "done")
    assert seen_done() == 3
    j.mark_sending(4, durable=True)
    assert other.execute("SELECT attempts FROM rows WHERE line=4").fetchone()[0] == 1
    j.settle(5, "done")
    now[0] = 11.0
    j.settle(4, "done")  # the interval elapsed
    assert seen_done() == 5
    other.close()
    j.close()


def test_maybe_sent_lists_rows_with_attempts(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    j.add_pending([(2, "A", "id"), (3, None, None), (4, None, None)])
    j.mark_sending(2, durable=False)
    j.mark_sending(3, durable=True)
    assert j.maybe_sent() == [(2, "A", "id", "pending"), (3, None, None, "pending")]
    j.reset_attempts(2)
    assert [r[0] for r in j.maybe_sent()] == [3]
    j.close()


def test_public_url_drops_credentials() -> None:
    assert public_url("http://bob:s3cret@crm:8080/x.asmx?token=abc") == "http://crm:8080/x.asmx"


def test_not_a_journal(tmp_path: Path) -> None:
    bad = tmp_path / "j.sqlite"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(JournalError, match="not a crmload journal"):
        Journal(bad)

"""Journal: one run per journal (the run lock), moving a run to a corrected URL, and SQLite failures.

Everything here uses real SQLite files; the "full disk" is SQLite's own ``max_page_count`` limit, which
fails writes with the same SQLITE_FULL a full disk gives. Cross-process cases are in
tests/integration/test_journal_hostile.py.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import threading
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from crmload.errors import JournalBusyError, JournalError, RecordNotFound
from crmload.load import Loader
from crmload.load.journal import Journal, Target
from crmload.load.runlock import RunLock, lock_path, read_info

T = Target(url="http://crm/x.asmx", org="Contoso", entity="account", mode="create", key="code")
NEW = "http://crm-fixed/x.asmx"


class StoreClient:
    """A fake CRM client with a store; ``gate`` (an Event) holds every Create until it is set."""

    url = "http://crm/x.asmx"
    org = "Contoso"

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.store: dict[UUID, dict[str, Any]] = {}
        self.creates = 0
        self.gate = gate
        self.started = threading.Event()
        self._lock = threading.Lock()

    def create(self, entity: str, attrs: dict[str, Any], *, id: UUID | None = None) -> UUID:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        with self._lock:
            self.creates += 1
            new = id or uuid.uuid4()
            self.store[new] = dict(attrs)
            return new

    def retrieve(self, entity: str, id: UUID, columns: Any = None) -> dict[str, Any]:
        with self._lock:
            if id not in self.store:
                raise RecordNotFound("missing")
            return dict(self.store[id])

    def stats(self) -> dict[str, Any]:
        return {}


def _rows(n: int, key: bool = True) -> list[dict[str, str]]:
    return [({"code": f"A-{i}"} if key else {}) | {"name": f"Acc {i}"} for i in range(1, n + 1)]


# -- the run lock --------------------------------------------------------------------------------------------
def test_second_open_is_refused_while_the_first_holds_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    first = Journal.open(path, T)
    info = read_info(lock_path(path))
    assert info["pid"] == os.getpid()
    with pytest.raises(JournalBusyError, match=f"pid {os.getpid()} on ") as caught:
        Journal.open(path, T, resume=True)
    assert caught.value.pid == os.getpid()
    assert str(path) in str(caught.value)
    first.close()
    assert not lock_path(path).exists()  # released and tidied
    Journal.open(path, T, resume=True).close()


def test_restart_never_erases_a_journal_that_another_run_holds(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    first = Journal.open(path, T)
    first.add_pending([(2, "A-1", None)])
    first.settle(2, "done", outcome="created")
    first.flush()
    with pytest.raises(JournalBusyError):
        Journal.open(path, T, restart=True)
    assert first.counts()["done"] == 1
    first.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM rows WHERE state = 'done'").fetchone()[0] == 1
    db.close()


def test_a_lock_file_left_behind_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    # What a SIGKILLed run leaves: the file with its details, but no OS lock (it died with the process).
    lock_path(path).write_text(json.dumps({"pid": 999_999_999, "host": "gone"}), encoding="utf-8")
    j = Journal.open(path, T)
    assert read_info(lock_path(path))["pid"] == os.getpid()
    j.close()


def test_lock_file_holds_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["crmload", "import", "in.csv", "--url", "http://bob:s3cret@crm/x.asmx?token=t0ken"]
    monkeypatch.setattr(sys, "argv", argv)
    with RunLock.acquire(tmp_path / "j.sqlite") as lock:
        text = lock.path.read_text(encoding="utf-8")
    assert "s3cret" not in text
    assert "t0ken" not in text
    assert "http://crm/x.asmx" in text


def test_read_only_journal_file_is_a_journal_error_naming_it(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes read-only files; the integration test covers a read-only mount")
    path = tmp_path / "j.sqlite"
    Journal.open(path, T).close()
    path.chmod(0o400)
    with pytest.raises(JournalError, match=str(path)):
        Journal.open(path, T, resume=True)


def test_a_loader_holds_the_lock_for_its_whole_run(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    gate = threading.Event()
    slow = StoreClient(gate)
    first = Loader(slow, "account", key="code", journal=path, workers=2)
    result: list[Any] = []
    runner = threading.Thread(target=lambda: result.append(first.run(_rows(20))))
    runner.start()
    try:
        assert slow.started.wait(10)
        other = StoreClient()
        with pytest.raises(JournalBusyError, match=f"pid {os.getpid()}"):
            Loader(other, "account", key="code", journal=path, resume=True).run(_rows(20))
        assert other.creates == 0  # refused before anything was sent
    finally:
        gate.set()
        runner.join(30)
    first.close()
    assert result[0].done == 20
    again = Loader(StoreClient(), "account", key="code", journal=path, resume=True)
    assert again.run(_rows(20)).skipped_from_journal == 20
    again.close()


def test_a_finished_run_frees_the_journal_even_unclosed_but_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    loader = Loader(StoreClient(), "account", key="code", journal=path)
    assert loader.run(_rows(5)).done == 5
    # Not closed, and still referenced: the run is over, so the next one may take the journal.
    nxt = Journal.open(path, T, resume=True)
    assert nxt.counts()["done"] == 5
    nxt.close()
    assert loader.journal is not None
    assert loader.journal.counts()["done"] == 5  # the finished run's journal still answers reads
    with pytest.raises(JournalError, match="run has ended"):
        loader.journal.settle(1, "pending")
    loader.close()


# -- moving a run to a corrected URL -------------------------------------------------------------------------
def _moved(t: Target, url: str = NEW) -> Target:
    return Target(url=url, org=t.org, entity=t.entity, mode=t.mode, key=t.key)


def test_resume_moves_a_run_to_a_new_url_when_nothing_was_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal.open(path, T)
    j.add_pending([(2, "A-1", None), (3, "A-2", None)])
    j.reject(4, None, "map", "bad date")
    j.close()
    with caplog.at_level(logging.WARNING, logger="crmload"):
        j = Journal.open(path, _moved(T), resume=True)
    meta = j.meta()
    j.close()
    assert meta["target.url"] == NEW
    record = json.loads(meta["retarget.1"])
    assert (record["from"], record["to"], record["forced"]) == (T.url, NEW, False)
    assert any("run moved from" in r.getMessage() and NEW in r.getMessage() for r in caplog.records)
    Journal.open(path, _moved(T), resume=True).close()  # the journal now belongs to the new URL


def test_moving_needs_retarget_once_rows_may_have_landed(tmp_path: Path) -> None:
    for state in ("done", "in_doubt"):
        path = tmp_path / f"{state}.sqlite"
        j = Journal.open(path, T)
        j.add_pending([(2, "A-1", None)])
        j.settle(2, state, outcome="created" if state == "done" else None)
        j.close()
        with pytest.raises(JournalError, match="--retarget"):
            Journal.open(path, _moved(T), resume=True)
        j = Journal.open(path, _moved(T), resume=True, retarget=True)
        meta = j.meta()
        j.close()
        assert meta["target.url"] == NEW
        assert json.loads(meta["retarget.1"])["forced"] is True


def test_url_change_without_resume_and_other_fields_still_refuse(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    Journal.open(path, T).close()
    with pytest.raises(JournalError, match="--resume moves it to this --url"):
        Journal.open(path, _moved(T))
    others = [
        Target(url=NEW, org="Fabrikam", entity="account", mode="create", key="code"),
        Target(url=NEW, org="Contoso", entity="contact", mode="create", key="code"),
        Target(url=NEW, org="Contoso", entity="account", mode="upsert", key="code"),
        Target(url=NEW, org="Contoso", entity="account", mode="create", key="other"),
    ]
    for other in others:
        with pytest.raises(JournalError, match="belongs to another run"):
            Journal.open(path, other, resume=True, retarget=True)
    j = Journal.open(path, T, resume=True)
    assert j.meta()["target.url"] == T.url
    j.close()


# -- SQLite failures mid-run ---------------------------------------------------------------------------------
def _full_after(path: Path, target: Target, pages: int) -> Journal:
    """A journal whose database may not grow past ``pages`` more pages: writes then fail with SQLITE_FULL."""
    j = Journal.open(path, target)
    used = j._db.execute("PRAGMA page_count").fetchone()[0]
    j._db.execute(f"PRAGMA max_page_count = {used + pages}")
    return j


@pytest.mark.parametrize("keyed", [True, False])
def test_full_journal_stops_the_run_as_fatal_and_resume_sends_nothing_twice(
    tmp_path: Path, keyed: bool
) -> None:
    path = tmp_path / "j.sqlite"
    client = StoreClient()
    rows = _rows(3000, key=keyed)
    target = T if keyed else Target(url=T.url, org=T.org, entity="account", mode="create")
    journal = _full_after(path, target, 12)
    loader = Loader(client, "account", key="code" if keyed else None, journal=journal, target=target)
    summary = loader.run(rows)
    assert summary.fatal is not None
    assert "JournalError" in summary.fatal
    assert str(path) in summary.fatal
    assert "full" in summary.fatal
    assert summary.exit_code == 1
    with pytest.raises(JournalError, match="full"):
        journal.add_pending([(99_999, None, None)])  # broken for writing: the same error again
    journal.close()  # quiet: its error was reported
    assert not lock_path(path).exists()
    with sqlite3.connect(path) as db:
        counted = dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
    db.close()
    assert counted.get("done", 0) > 0
    # the run stopped short. Which write met the full disk depends on thread timing: a worker's done mark
    # (rows left pending) or the reader's next chunk of pending rows (those rows never journalled, so the
    # resume reads them afresh); both are correct, and the resume below must settle every row either way
    assert counted["done"] < 3000
    assert counted["done"] <= len(client.store)

    again = Loader(client, "account", key="code" if keyed else None, journal=path, resume=True, target=target)
    final = again.run(rows)
    again.close()
    assert final.fatal is None
    assert final.done + final.rejected + final.in_doubt == final.read == 3000
    names = [r["name"] for r in client.store.values()]
    assert len(names) == len(set(names))  # nothing was sent twice
    if keyed:
        assert (final.done, len(names)) == (3000, 3000)
    else:  # rows whose answer the failure lost are in doubt, never re-sent
        assert final.done <= len(names) <= final.done + final.in_doubt


def test_truncated_journal_is_refused_naming_it_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal.open(path, T)
    j.add_pending([(n, f"A-{n}", None) for n in range(2, 20_002)])
    j.close()
    size = path.stat().st_size
    os.truncate(path, size // 2)
    with pytest.raises(JournalError, match="damaged") as caught:
        Journal.open(path, T, resume=True)
    assert str(path) in str(caught.value)
    assert path.stat().st_size == size // 2  # nothing erased or rewritten
    assert not lock_path(path).exists()

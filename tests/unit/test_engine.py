"""Loader with an in-memory fake client (no sockets): modes, rejects, in doubt, fatal stop, resume."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from crmload.errors import (
    AuthenticationError,
    ConfigError,
    DuplicateRecord,
    InvalidArgument,
    RecordNotFound,
    ResponseLostError,
    RetryExhaustedError,
)
from crmload.load import Loader, RejectsWriter, key_id
from crmload.load.journal import Journal


class FakeClient:
    """Keeps records per entity; can raise a chosen error for chosen calls."""

    url = "http://fake.invalid/MSCRMServices/2007/CrmService.asmx"
    org = "Fake"

    def __init__(self, fail: Any = None) -> None:
        self.store: dict[str, dict[UUID, dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail = fail  # callable(op, entity, attrs, id) -> Exception | None
        self._lock = threading.Lock()

    def _maybe_fail(self, op: str, entity: str, attrs: Any, id: UUID | None) -> None:
        if self.fail is not None:
            exc = self.fail(op, entity, attrs, id)
            if exc is not None:
                raise exc

    def create(self, entity: str, attrs: dict[str, Any], *, id: UUID | None = None) -> UUID:
        with self._lock:
            self.calls.append(("create", entity))
            self._maybe_fail("create", entity, attrs, id)
            table = self.store.setdefault(entity, {})
            new = id or uuid.uuid4()
            if new in table:
                raise DuplicateRecord("duplicate")
            table[new] = dict(attrs)
            return new

    def update(self, entity: str, id: UUID, attrs: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append(("update", entity))
            self._maybe_fail("update", entity, attrs, id)
            table = self.store.setdefault(entity, {})
            if id not in table:
                raise RecordNotFound("missing")
            table[id].update(attrs)

    def delete(self, entity: str, id: UUID) -> None:
        with self._lock:
            self.calls.append(("delete", entity))
            self._maybe_fail("delete", entity, None, id)
            if self.store.setdefault(entity, {}).pop(id, None) is None:
                raise RecordNotFound("missing")

    def retrieve(self, entity: str, id: UUID, columns: Any = None) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("retrieve", entity))
            rec = self.store.setdefault(entity, {}).get(id)
            if rec is None:
                raise RecordNotFound("missing")
            return dict(rec)

    def stats(self) -> dict[str, Any]:
        return {"calls": len(self.calls), "sockets_opened": 1}


def _rows(n: int, bad_every: int = 0) -> list[dict[str, str]]:
    return [
        {"code": f"A-{i}", "name": f"Acc {i}", "revenue": "x" if bad_every and i % bad_every == 0 else "1.5"}
        for i in range(1, n + 1)
    ]


def test_create_keyed_then_rerun_counts_already_present() -> None:
    client = FakeClient()
    s = Loader(client, "account", key="code", workers=3).run(_rows(50, bad_every=10))
    assert (s.read, s.done, s.rejected, s.in_doubt) == (50, 45, 5, 0)
    assert s.balanced
    assert s.exit_code == 3
    assert set(client.store["account"]) == {key_id("account", f"A-{i}") for i in range(1, 51) if i % 10}
    again = Loader(client, "account", key="code").run(_rows(50, bad_every=10))
    assert (again.done, again.already_present) == (45, 45)
    assert len(client.store["account"]) == 45


def test_upsert_creates_then_updates() -> None:
    client = FakeClient()
    Loader(client, "account", key="code", mode="upsert").run(_rows(5))
    rows = [dict(r, name="renamed") for r in _rows(5)]
    s = Loader(client, "account", key="code", mode="upsert").run(rows)
    assert s.done == 5
    assert s.exit_code == 0
    assert {r["name"] for r in client.store["account"].values()} == {"renamed"}
    assert [op for op, _ in client.calls].count("update") == 5


def test_update_and_delete_need_ids_and_are_idempotent() -> None:
    client = FakeClient()
    Loader(client, "account", key="code").run(_rows(4))
    s = Loader(client, "account", key="code", mode="delete").run([*_rows(4), {"code": "A-99", "name": "x"}])
    assert s.done == 5  # A-99 was never there: already absent counts as done
    assert client.store["account"] == {}
    s = Loader(client, "account", mode="update").run([{"name": "no id"}])
    assert s.rejected == 1
    with pytest.raises(ConfigError, match="mode must be one of"):
        Loader(client, "account", mode="merge")


def test_crm_fault_rejects_the_row_with_phase_send(tmp_path: Path) -> None:
    client = FakeClient(
        fail=lambda op, e, attrs, id: (
            InvalidArgument("bad", code="0x80040203") if attrs and attrs.get("name") == "Acc 3" else None
        )
    )
    rejects = RejectsWriter(tmp_path / "r.csv", columns=["code", "name", "revenue"])
    s = Loader(client, "account", key="code", rejects=rejects).run(_rows(5))
    assert (s.done, s.rejected) == (4, 1)
    text = (tmp_path / "r.csv").read_text(encoding="utf-8")
    assert "A-3,Acc 3,1.5,3,send,InvalidArgument 0x80040203: bad" in text


def test_lost_answer_of_unkeyed_create_is_in_doubt_never_resent() -> None:
    client = FakeClient(
        fail=lambda op, e, attrs, id: (
            ResponseLostError("reset") if attrs and attrs.get("name") == "Acc 2" else None
        )
    )
    s = Loader(client, "account").run([{"name": f"Acc {i}"} for i in range(1, 4)])
    assert (s.done, s.in_doubt, s.in_doubt_lines) == (2, 1, [2])
    assert s.exit_code == 3
    assert s.balanced
    assert [op for op, _ in client.calls].count("create") == 3


def test_fatal_error_stops_and_resume_finishes(tmp_path: Path) -> None:
    down = {"on": True}

    def fail(op: str, e: str, attrs: object, id: object) -> Exception | None:
        if down["on"] and attrs and attrs.get("name") == "Acc 30":  # type: ignore[attr-defined]
            return RetryExhaustedError("gave up", last=AuthenticationError("401"), attempts=8)
        return None

    client = FakeClient(fail=fail)
    path = tmp_path / "j.sqlite"
    first = Loader(client, "account", key="code", journal=path, workers=2, read_chunk=10)
    s = first.run(_rows(100))
    first.close()  # the run lock is held until close; left to the garbage collector it may outlive the test
    assert s.fatal
    assert s.exit_code == 1
    assert not s.balanced
    assert s.pending > 0
    down["on"] = False
    s2 = Loader(client, "account", key="code", journal=path, resume=True).run(_rows(100))
    assert (s2.read, s2.done, s2.exit_code) == (100, 100, 0)
    assert s2.skipped_from_journal == s.done
    assert len(client.store["account"]) == 100


def test_resume_settles_maybe_sent_rows(tmp_path: Path) -> None:
    client = FakeClient()
    path = tmp_path / "j.sqlite"
    loader = Loader(client, "account", key="code", journal=path)
    loader.run(_rows(3))
    loader.close()
    # Forge a crash: rows 2 (landed) and 3 (not landed) pending with an attempt; row 4 unkeyed, maybe sent.
    j = Journal(path)
    for line in (2, 3):
        j.settle(line, "pending")
        j.mark_sending(line, durable=True)
    client.store["account"].pop(key_id("account", "A-3"))
    j.close()
    client.calls.clear()
    s = Loader(client, "account", key="code", journal=path, resume=True).run(_rows(3))
    # Both are sent again by id (a batch on the Organization service): row 2 meets its own record, landed
    # before the crash, and is done as created, not "already present"; row 3 is created now.
    assert (s.done, s.already_present, s.exit_code) == (3, 0, 0)
    assert client.calls == [("create", "account"), ("create", "account")]
    assert len(client.store["account"]) == 3


def test_unkeyed_maybe_sent_row_goes_in_doubt_on_resume(tmp_path: Path) -> None:
    client = FakeClient()
    path = tmp_path / "j.sqlite"
    j = Journal.open(path, Loader(client, "account").target)
    j.add_pending([(1, None, None)])
    j.mark_sending(1, durable=True)
    j.close()
    s = Loader(client, "account", journal=path, resume=True).run([{"name": "x"}, {"name": "y"}])
    assert (s.done, s.in_doubt, s.in_doubt_lines) == (1, 1, [1])
    assert client.calls == [("create", "account")]


def test_dry_run_sends_nothing_and_reports_rejects(tmp_path: Path) -> None:
    s = Loader(None, "account", key="code", dry_run=True, rejects=tmp_path / "r.csv").run(
        _rows(20, bad_every=4)
    )
    assert (s.done, s.rejected, s.dry_run) == (15, 5, True)
    assert len((tmp_path / "r.csv").read_text(encoding="utf-8").splitlines()) == 6


def test_reader_streams_with_bounded_lookahead() -> None:
    client = FakeClient()
    read = {"n": 0}
    lag = []

    def rows() -> Iterator[dict[str, str]]:
        for i in range(1, 3001):
            read["n"] = i
            lag.append(i - len(client.calls))
            yield {"code": f"A-{i}", "name": "x"}

    s = Loader(client, "account", key="code", workers=2, read_chunk=50).run(rows())
    assert s.done == 3000
    # Reader runs ahead of the workers by at most one batch plus the queue plus the rows in flight.
    assert max(lag) <= 50 + 2 * 4 + 2 + 1


def test_summary_renders_equation_and_json() -> None:
    s = Loader(FakeClient(), "account").run([{"name": "a"}])
    assert "1 done + 0 rejected + 0 in doubt == 1 rows read" in s.render()
    assert '"balanced": true' in s.to_json()


def test_duplicate_of_unkeyed_create_is_rejected() -> None:
    client = FakeClient(fail=lambda op, e, attrs, id: DuplicateRecord("dup") if op == "create" else None)
    s = Loader(client, "account").run([{"name": "a"}])
    assert s.rejected == 1


def test_not_found_on_update_is_a_reject(tmp_path: Path) -> None:
    client = FakeClient()
    path = tmp_path / "j.sqlite"
    loader = Loader(client, "account", key="code", mode="update", journal=path)
    s = loader.run(_rows(1))
    assert s.rejected == 1
    assert loader.journal is not None
    [(line, key, error)] = list(loader.journal.rows("rejected"))
    loader.close()
    assert (line, key) == (1, "A-1")
    assert error.startswith(RecordNotFound.__name__)


def test_progress_bar_shows_counts_retries_and_sockets() -> None:
    import io

    from crmload.load import Progress

    stream = io.StringIO()
    now = [0.0]
    bar = Progress(
        enabled=True, stream=stream, stats=lambda: {"retries": 2, "sockets_opened": 1}, clock=lambda: now[0]
    )
    bar.add("done", 3)
    bar.add("rejected")
    now[0] = 1.0
    bar.close()
    text = stream.getvalue()
    assert "4 rows, 4.0 rows/s" in text
    assert "1 rejected" in text
    assert "2 retries" in text
    assert "1 sockets" in text


def test_interrupt_leaves_rows_pending_for_resume(tmp_path: Path) -> None:
    client = FakeClient()

    def rows() -> Iterator[dict[str, str]]:
        yield from _rows(30)
        raise KeyboardInterrupt

    path = tmp_path / "j.sqlite"
    loader = Loader(client, "account", key="code", journal=path, read_chunk=10)
    with pytest.raises(KeyboardInterrupt):
        loader.run(rows())
    loader.close()
    s = Loader(client, "account", key="code", journal=path, resume=True).run(_rows(30))
    assert (s.read, s.done, s.exit_code) == (30, 30, 0)
    assert len(client.store["account"]) == 30


def test_in_doubt_lines_say_when_they_are_capped(tmp_path: Path) -> None:
    client = FakeClient(fail=lambda op, e, attrs, id: ResponseLostError("reset after send"))
    s = Loader(client, "account", workers=2, in_doubt=tmp_path / "d.csv").run(
        [{"name": f"n{i}"} for i in range(1, 1006)]
    )
    assert (s.in_doubt, len(s.in_doubt_lines), s.in_doubt_lines_truncated) == (1005, 1000, True)
    assert "and 985 more" in s.render()
    assert (s.in_doubt_file, s.in_doubt_file_rows) == (str(tmp_path / "d.csv"), 1005)
    assert len((tmp_path / "d.csv").read_text(encoding="utf-8").splitlines()) == 1006


def test_a_resume_that_stops_early_still_lists_every_row_in_doubt(tmp_path: Path) -> None:
    client = FakeClient(fail=lambda op, e, attrs, id: AuthenticationError("refused"))
    path = tmp_path / "j.sqlite"
    j = Journal.open(path, Loader(client, "account").target)
    j.add_pending([(n, None, None) for n in range(1, 11)])
    for n in (7, 9):
        j.settle(n, "in_doubt", phase="send", error="lost")
    j.close()
    doubt = tmp_path / "d.csv"
    loader = Loader(client, "account", journal=path, resume=True, workers=1, read_chunk=2, in_doubt=doubt)

    def rows() -> Iterator[dict[str, str]]:
        for n in range(1, 11):
            if n == 3:
                assert loader._stop.wait(10)  # the fatal error stops the run before line 7 is read
            yield {"name": f"row {n}"}

    s = loader.run(rows())
    loader.close()
    assert s.fatal is not None
    assert (s.in_doubt, s.in_doubt_file_rows) == (2, 2)
    lines = doubt.read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[:2] for line in lines[1:]] == [["row 7", "7"], ["row 9", "9"]]

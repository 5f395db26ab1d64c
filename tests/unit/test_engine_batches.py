"""Loader batches with a fake batch client (no sockets): per-row outcomes, the breaker in row order, bisection
of a value the codec refuses, in-doubt rows of a lost answer, and what a crash mid-batch leaves to resume."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

from crmload.batch import BatchRequest, CreateRequest
from crmload.errors import (
    CircuitOpenError,
    CrmFault,
    CrmLoadError,
    DuplicateRecord,
    EncodingError,
    PrivilegeDenied,
    ResponseLostError,
)
from crmload.load import Loader
from crmload.soap.dialect import Capabilities


class BatchClient:
    """Creates records in batches; a row named ``bad*`` faults, ``deny`` rows are refused as a privilege, a
    name with NUL cannot be encoded (the whole request fails to build), and ``lose`` drops a batch's answer
    after it landed (unkeyed creates then come back ``ResponseLostError``, as ``execute_multiple`` does)."""

    url = "http://fake.invalid/XRMServices/2011/Organization.svc/web"
    org = "Fake"
    endpoint = "2011"
    capabilities = Capabilities(max_batch=1000, upsert=True, alternate_keys=True, multi_select=True)
    batch_limit = 1000

    def __init__(self, *, lose: set[int] | None = None, crash: tuple[int, Path, Path] | None = None) -> None:
        self.store: dict[UUID, dict[str, Any]] = {}
        self.batches: list[int] = []
        self.lose = lose or set()
        self.crash = crash  # (batch number, journal, copy): copy the journal's files as a SIGKILL leaves them
        self.store_at_crash: dict[UUID, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def execute_multiple(self, requests: list[BatchRequest], *, batch_size: int) -> list[Any]:
        with self._lock:
            if any("\x00" in str(r.attrs.get("name", "")) for r in requests if isinstance(r, CreateRequest)):
                raise EncodingError("name: a NUL cannot be sent in XML", column="name")
            n = len(self.batches)
            self.batches.append(len(requests))
            out: list[Any] = []
            for r in requests:
                assert isinstance(r, CreateRequest)
                name = str(r.attrs.get("name"))
                if name.startswith("deny"):
                    out.append(
                        PrivilegeDenied(
                            "Principal user is missing prvCreateAccount privilege.", code="0x80040220"
                        )
                    )
                elif name.startswith("bad"):
                    out.append(CrmFault(f"{name} is not valid", code="0x80040203"))
                elif r.id is not None and r.id in self.store:
                    out.append(DuplicateRecord("exists", code="0x80040237"))
                else:
                    new = r.id or uuid.uuid4()
                    self.store[new] = dict(r.attrs)
                    out.append(new)
            if self.crash is not None and self.crash[0] == n:  # the batch landed; its answer never arrives
                for suffix in ("", "-wal"):
                    if Path(f"{self.crash[1]}{suffix}").exists():
                        shutil.copyfile(f"{self.crash[1]}{suffix}", f"{self.crash[2]}{suffix}")
                self.store_at_crash = dict(self.store)
            if n in self.lose:
                return [
                    x if r.idempotent else ResponseLostError("answer lost")
                    for r, x in zip(requests, out, strict=True)
                ]
            return out

    def create(self, entity: str, attrs: dict[str, Any], *, id: UUID | None = None) -> UUID:
        result = self.execute_multiple([CreateRequest(entity, attrs, id)], batch_size=1)[0]
        if isinstance(result, CrmLoadError):
            raise result
        assert isinstance(result, UUID)
        return result

    def stats(self) -> dict[str, Any]:
        return {}


def _rows(names: list[str]) -> list[dict[str, str]]:
    return [{"accountnumber": f"C-{i}", "name": n} for i, n in enumerate(names, 1)]


def test_a_bad_row_costs_only_its_row_and_keeps_its_line_and_message(tmp_path: Path) -> None:
    names = [f"ok {i}" for i in range(50)]
    names[7] = names[31] = "bad one"
    client = BatchClient()
    s = Loader(client, "account", batch_size=10, workers=1, rejects=tmp_path / "r.csv").run(_rows(names))
    assert (s.done, s.rejected, s.batches, s.mean_batch_size) == (48, 2, 5, 10.0)
    assert s.item_faults_by_code == {"0x80040203": 2}
    text = (tmp_path / "r.csv").read_text(encoding="utf-8")
    assert "bad one is not valid" in text
    assert ",8,send," in text
    assert ",32,send," in text
    assert len(client.store) == 48


def test_the_breaker_sees_item_faults_in_row_order_and_leaves_them_pending() -> None:
    client = BatchClient()
    s = Loader(client, "account", batch_size=8, workers=1, breaker=5).run(_rows(["deny"] * 40))
    assert s.fatal is not None
    assert CircuitOpenError.__name__ in s.fatal
    assert (s.rejected, s.done) == (0, 0)
    assert s.pending == 40  # the held rows and the rest, all left for --resume
    assert client.batches == [8]  # it tripped inside the first batch: nothing more was sent


def test_streak_broken_by_a_success_rejects_the_held_rows() -> None:
    s = Loader(BatchClient(), "account", batch_size=8, workers=1, breaker=5).run(
        _rows(["deny", "deny", "ok", "deny"] * 4)
    )
    assert (s.done, s.rejected, s.pending, s.fatal) == (4, 12, 0, None)


def test_a_value_the_codec_refuses_is_bisected_to_its_row(tmp_path: Path) -> None:
    names = [f"ok {i}" for i in range(16)]
    names[5] = "nul\x00here"
    client = BatchClient()
    s = Loader(client, "account", batch_size=16, workers=1).run(_rows(names))
    assert (s.done, s.rejected) == (15, 1)
    assert len(client.store) == 15
    assert sum(client.batches) == 15  # every good row sent once


def test_lost_answer_puts_exactly_its_unkeyed_rows_in_doubt() -> None:
    client = BatchClient(lose={1})
    s = Loader(client, "account", batch_size=10, workers=1).run(_rows([f"n{i}" for i in range(30)]))
    assert (s.done, s.in_doubt, s.rejected) == (20, 10, 0)
    assert s.in_doubt_lines == list(range(11, 21))
    assert len(client.store) == 30  # they landed; none was sent twice


def test_keyed_rows_of_a_lost_answer_are_done() -> None:
    client = BatchClient(lose={0})
    s = Loader(client, "account", key="accountnumber", batch_size=10, workers=1).run(
        _rows([f"n{i}" for i in range(20)])
    )
    assert (s.done, s.in_doubt) == (20, 0)


def test_crash_mid_batch_leaves_its_rows_maybe_sent_and_resume_puts_them_in_doubt(tmp_path: Path) -> None:
    journal, crashed = tmp_path / "j.sqlite", tmp_path / "crashed.sqlite"
    rows = _rows([f"n{i}" for i in range(30)])
    client = BatchClient(crash=(1, journal, crashed))
    Loader(client, "account", journal=journal, batch_size=10, workers=1).run(rows)
    db = sqlite3.connect(crashed)
    states = dict(db.execute("SELECT line, state || ':' || attempts FROM rows"))
    db.close()
    # As the crash left the disk: batch 1 done, batch 2 marked in flight (committed before it was sent).
    assert [line for line, s in states.items() if s == "pending:1"] == list(range(11, 21))
    assert [line for line, s in states.items() if s.startswith("done")] == list(range(1, 11))
    resumed = BatchClient()
    resumed.store = dict(client.store_at_crash)
    s = Loader(resumed, "account", journal=crashed, batch_size=10, workers=1, resume=True).run(rows)
    assert (s.done, s.in_doubt, s.pending, s.skipped_from_journal) == (20, 10, 0, 20)
    assert s.in_doubt_lines == list(range(11, 21))
    assert len(resumed.store) == 30  # the crashed batch had landed; nothing was sent twice

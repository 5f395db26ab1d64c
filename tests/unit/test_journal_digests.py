"""Journal row digests: kept per row, read back in line order, and a changed input refused on resume."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crmload.errors import JournalError
from crmload.load.journal import Journal, Target, file_identity

T = Target(url="http://crm/x.asmx", org="Contoso", entity="account", mode="create", key="k")


def _journal(tmp_path: Path) -> Journal:
    j = Journal.open(tmp_path / "j.sqlite", T)
    j.add_pending([(2, "A", None, 111), (3, "B", None, 222)])
    j.reject(4, None, "read", "ragged", digest=333)
    j.add_pending([(6, "D", None, 666)])
    j.reject(6, "D", "send", "bad value")  # a send-phase reject keeps the digest the row was read with
    j.add_pending([(7, "E", None)])  # rows from dicts have no digest
    return j


def test_digests_come_back_in_line_order(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    assert list(j.digests(batch=2)) == [(2, 111), (3, 222), (4, 333), (6, 666)]
    j.close()


def test_the_same_records_pass(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    # Line 5 was blank then, line 8 is past what was journalled: neither needs a check.
    j.verify_source(iter([(2, 111), (3, 222), (4, 333), (5, 555), (6, 666), (8, 888)]), "in.csv")
    j.close()


@pytest.mark.parametrize(
    ("now", "message"),
    [
        ([(2, 111), (3, 999), (4, 333), (6, 666)], "line 3 of in.csv differs"),
        ([(2, 111), (3, 222), (5, 333), (6, 666)], "line 4 of in.csv no longer starts a record"),
        ([(2, 111), (3, 222), (4, 333)], "line 6 of in.csv no longer starts a record"),
    ],
)
def test_a_changed_record_is_refused_naming_its_line(
    tmp_path: Path, now: list[tuple[int, int]], message: str
) -> None:
    j = _journal(tmp_path)
    with pytest.raises(JournalError, match=message):
        j.verify_source(iter(now), "in.csv")
    j.close()


def test_a_journal_from_an_older_crmload_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n", encoding="utf-8")
    path = tmp_path / "old.sqlite"
    Journal.open(path, T, file_identity(src)).close()
    with sqlite3.connect(path) as db:  # the rows table an older crmload made: no digest column
        db.executescript(
            "DROP TABLE rows; CREATE TABLE rows (line INTEGER PRIMARY KEY, key TEXT, crm_id TEXT, "
            "state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, outcome TEXT, phase TEXT, error TEXT);"
        )
    db.close()
    with pytest.raises(JournalError, match=r"made by an older crmload.*--restart"):
        Journal.open(path, T, file_identity(src), resume=True)
    j = Journal.open(path, T, file_identity(src), restart=True)
    j.add_pending([(2, None, None, 5)])
    assert list(j.digests()) == [(2, 5)]
    j.close()

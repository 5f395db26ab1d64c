"""RejectsWriter: original columns, crmload_* columns, lazy creation, append, round trip of bad bytes."""

from __future__ import annotations

import csv
from pathlib import Path

from crmload.load.rejects import REJECT_COLUMNS, RejectsWriter
from crmload.load.source import CsvSource


def test_rejects_keep_columns_and_add_reason(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    w = RejectsWriter(path, columns=["a", "b", "crmload_error"])
    assert not path.exists()  # created on the first reject only
    w.write(7, "map", "column 'b': not a date", {"a": "1", "b": "x, y", "crmload_error": "old"})
    w.close()
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["a", "b", *REJECT_COLUMNS], ["1", "x, y", "7", "map", "column 'b': not a date"]]


def test_append_on_resume_and_replace_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    with RejectsWriter(path, columns=["a"]) as w:
        w.write(2, "read", "e1", {"a": "1"})
    with RejectsWriter(path, columns=["a"], append=True) as w:
        w.write(3, "send", "e2", {"a": "2"})
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3
    RejectsWriter(path, columns=["a"]).close()
    assert not path.exists()


def test_bad_bytes_and_nul_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"a,b\nok\xff,x\x00y\n")
    out = tmp_path / "r.csv"
    with CsvSource(src) as source, RejectsWriter(out, columns=source.header) as w:
        for row in source:
            w.write(row.line_no, "read", str(row.error), row.values)
    assert b"ok\xff,x\x00y,2,read," in out.read_bytes()

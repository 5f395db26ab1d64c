"""RejectsWriter and its paths: columns, lazy creation, append, bad bytes, union of keys, what it replaces."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest

from crmload.errors import ConfigError
from crmload.load import Loader
from crmload.load.outfiles import check_output_path, is_output_file, output_encoding, output_paths
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
    assert rows == [["a", "b", *REJECT_COLUMNS], ["1", "x, y", "7", "map", "column 'b': not a date", ""]]


def test_append_on_resume_and_replace_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    with RejectsWriter(path, columns=["a"]) as w:
        w.write(2, "read", "e1", {"a": "1"})
    with RejectsWriter(path, columns=["a"], append=True) as w:
        w.write(3, "send", "e2", {"a": "2"})
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3
    quiet = RejectsWriter(path, columns=["a"])
    quiet.close()
    assert quiet.kept_earlier  # a run without rejects leaves the earlier file as it was, and says so
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3
    with RejectsWriter(path, columns=["a"]) as w:
        w.write(4, "map", "e3", {"a": "3"})
    assert path.read_text(encoding="utf-8").splitlines()[1:] == [
        "3,4,map,e3,"
    ]  # replaced by the first row (crmload_raw empty)


def test_bad_bytes_and_nul_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"a,b\nok\xff,x\x00y\n")
    out = tmp_path / "r.csv"
    with CsvSource(src) as source, RejectsWriter(out, columns=source.header) as w:
        for row in source:
            w.write(row.line_no, "read", str(row.error), row.values)
    assert b"ok\xff,x\x00y,2,read," in out.read_bytes()


def test_rows_with_differing_keys_get_the_union_of_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    with RejectsWriter(path) as w:
        w.write(1, "map", "e1", {"a": "1", "b": "2"})
        w.write(2, "map", "e2", {"a": "3", "c": "4"})
        w.write(3, "map", "e3", {"d": "5", "crmload_error": "dropped"})
    with RejectsWriter(path, append=True, columns=["a", "e"]) as w:  # a resume that brings one more column
        w.write(4, "send", "e4", {"a": "6", "e": "7"})
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["a", "b", "c", "d", "e", *REJECT_COLUMNS],
        ["1", "2", "", "", "", "1", "map", "e1", ""],
        ["3", "", "4", "", "", "2", "map", "e2", ""],
        ["", "", "", "5", "", "3", "map", "e3", ""],
        ["6", "", "", "", "7", "4", "send", "e4", ""],
    ]


def test_loader_given_dicts_writes_every_columns_value(tmp_path: Path) -> None:
    rows = [
        {"name": "ok"},
        {"name": "x", "revenue": "not money"},
        {"name": "y", "numberofemployees": "many"},
        {"name": "z", "description": "kept", "revenue": "nope"},
    ]
    s = Loader(None, "account", dry_run=True, rejects=tmp_path / "r.csv").run(rows)
    assert s.rejected == 3
    with (tmp_path / "r.csv").open(encoding="utf-8", newline="") as fh:
        got = list(csv.DictReader(fh))
    assert [{k: v for k, v in r.items() if v and not k.startswith("crmload_")} for r in got] == rows[1:]


def test_an_existing_file_that_is_not_ours_is_refused_and_never_truncated(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    with pytest.raises(ConfigError, match="is not a crmload rejects file"):
        RejectsWriter(path)
    keep = tmp_path / "hardlink.csv"
    os.link(path, keep)
    with RejectsWriter(path, force=True) as w:  # forced: replaced by a new file, the old inode untouched
        w.write(2, "map", "e", {"a": "x"})
    assert keep.read_bytes() == b"a,b\n1,2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert is_output_file(path)


@pytest.mark.parametrize(
    ("header", "ours"),
    [
        (b"a,b,crmload_line,crmload_phase,crmload_error\r\n", True),
        (b"\xef\xbb\xbfa;crmload_line;crmload_phase;crmload_error\n", True),
        (b"a\tcrmload_line\tcrmload_phase\tcrmload_error\tcrmload_raw\n", True),  # later trailing columns
        ("a,crmload_line,crmload_phase,crmload_error\n".encode("utf-16"), True),
        (b"a,crmload_line,crmload_error\n", False),
        (b"crmload_line,crmload_phase,crmload_error,a\n", False),
        (b"", False),
        (b"\x00\xff binary", False),
    ],
)
def test_is_output_file_recognises_ours_by_the_trailing_columns(
    tmp_path: Path, header: bytes, ours: bool
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(header + b"1,2\n")
    assert is_output_file(path) is ours


def test_output_encoding_keeps_a_bom_only_if_the_input_had_one(tmp_path: Path) -> None:
    bom, plain = tmp_path / "bom.csv", tmp_path / "plain.csv"
    bom.write_bytes(b"\xef\xbb\xbfa\n")
    plain.write_bytes(b"a\n")
    assert output_encoding("utf-8-sig", bom) == "utf-8-sig"
    assert output_encoding("utf-8-sig", plain) == "utf-8"
    assert output_encoding("cp1252", plain) == "cp1252"


def test_text_the_encoding_cannot_carry_is_escaped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    with RejectsWriter(path, encoding="cp1252", columns=["a"]) as w:
        w.write(
            2, "send", "fault: \u2603 snowman", {"a": "caf\xe9 \udc81"}
        )  # \udc81: an undefined cp1252 byte
    assert path.read_bytes().splitlines()[1] == b"caf\xe9 \x81,2,send,fault: \\u2603 snowman,"


def test_paths_that_are_the_input_or_journal_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n", encoding="utf-8")
    (tmp_path / "alias.csv").symlink_to(src)
    for path in (src, tmp_path / "alias.csv", tmp_path / "sub" / ".." / "in.csv"):
        with pytest.raises(ConfigError, match="is the input"):
            check_output_path(path, protected={"input": src})
    with pytest.raises(ConfigError, match="no such directory"):
        check_output_path(tmp_path / "nowhere" / "r.csv")
    rejects, doubt = output_paths(src, None, tmp_path / "j.sqlite", dry_run=False, force=False)
    assert (rejects, doubt) == (tmp_path / "in.rejects.csv", tmp_path / "in.in-doubt.csv")
    assert output_paths(src, None, tmp_path / "j.sqlite", dry_run=True, force=False) == (None, None)
    with pytest.raises(ConfigError, match="is the journal"):
        output_paths(src, str(tmp_path / "j.sqlite"), tmp_path / "j.sqlite", dry_run=True, force=True)
    assert not (tmp_path / "j.sqlite").exists()

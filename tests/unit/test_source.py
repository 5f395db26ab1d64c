"""CsvSource: streaming read, per-row decoding errors, ragged rows, header problems, line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmload.errors import ConfigError
from crmload.load.source import CsvSource, restore


def _read(tmp_path: Path, data: bytes, **kw: str) -> tuple[list[str], list]:
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    with CsvSource(path, **kw) as src:
        return src.header, list(src)


def test_reads_rows_with_line_numbers_and_quoted_newlines(tmp_path: Path) -> None:
    header, rows = _read(tmp_path, b'a,b\n1,"x\r\ny"\n2,z\n')
    assert header == ["a", "b"]
    assert [(r.line_no, r.values) for r in rows] == [
        (2, {"a": "1", "b": "x\r\ny"}),
        (4, {"a": "2", "b": "z"}),
    ]
    assert all(r.error is None for r in rows)


def test_bom_is_dropped_from_the_header(tmp_path: Path) -> None:
    header, rows = _read(tmp_path, "\ufeffname\nCafé\n".encode())
    assert header == ["name"]
    assert rows[0].values == {"name": "Café"}


def test_invalid_utf8_spoils_only_its_row(tmp_path: Path) -> None:
    _, rows = _read(tmp_path, b"a,b\n1,ok\n2,bad\xff\n3,ok\n")
    assert [r.error is None for r in rows] == [True, False, True]
    assert "invalid utf-8" in str(rows[1].error)
    assert rows[1].error.column == "b"  # type: ignore[union-attr]
    assert "0xFF" in str(rows[1].error)


def test_nul_byte_is_rejected_and_restored_for_the_rejects_file(tmp_path: Path) -> None:
    _, rows = _read(tmp_path, b"a\nx\x00y\n")
    assert "NUL byte" in str(rows[0].error)
    assert restore(rows[0].values["a"]) == "x\x00y"


def test_ragged_rows_are_errors_with_their_extra_fields(tmp_path: Path) -> None:
    _, rows = _read(tmp_path, b"a,b\n1\n1,2,3\r\n")
    assert "ragged row: 1 fields, header has 2" in str(rows[0].error)
    # Nothing of a ragged row can be trusted to sit in its column: values stay empty, the text is kept.
    assert (rows[0].values, rows[0].raw) == ({}, "1")
    assert (rows[1].values, rows[1].raw, rows[1].extra) == ({}, "1,2,3", ("3",))


def test_empty_and_header_only_files_have_no_rows(tmp_path: Path) -> None:
    assert _read(tmp_path, b"") == ([], [])
    assert _read(tmp_path, b"a,b\n") == (["a", "b"], [])


def test_blank_lines_are_not_records(tmp_path: Path) -> None:
    _, rows = _read(tmp_path, b"a,b\n\n1,2\n\n")
    assert [r.line_no for r in rows] == [3]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"a,b,a\n1,2,3\n", "duplicate column 'a'"),
        (b"a,,b\n", "column 2 has no name"),
        (b"a\xff\n", "header"),
    ],
)
def test_header_problems_are_config_errors(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        _read(tmp_path, data)


def test_big_field_is_read_whole(tmp_path: Path) -> None:
    big = "x" * (1024 * 1024)
    _, rows = _read(tmp_path, f"a\n{big}\n".encode())
    assert rows[0].values["a"] == big


def test_other_delimiter_and_encoding(tmp_path: Path) -> None:
    _, rows = _read(tmp_path, "a;b\nÉ;2\n".encode("latin-1"), encoding="latin-1", delimiter=";")
    assert rows[0].values == {"a": "É", "b": "2"}


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one character"):
        CsvSource(tmp_path / "x.csv", delimiter=";;")
    with pytest.raises(ConfigError, match="unknown encoding"):
        CsvSource(tmp_path / "x.csv", encoding="nope-8")
    with pytest.raises(ConfigError, match="cannot open"):
        CsvSource(tmp_path / "missing.csv").open()

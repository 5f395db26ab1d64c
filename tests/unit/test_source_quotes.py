"""CsvSource and open quotes: a failed record costs its own line only, the raw text is kept, lines add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmload.errors import ConfigError
from crmload.load.source import DEFAULT_FIELD_LIMIT, CsvSource, SourceRow

BAD = 'UQ-{i},"Acme, unterminated,desc'


def _file(tmp_path: Path, rows: int, bad_at: int | None, *, quoted_every: int = 0) -> Path:
    """``rows`` account rows under a header; row ``bad_at`` (1-based) opens a quote it never closes.

    ``quoted_every``: every n-th row also has a properly quoted field, so the open quote meets a later
    quote (a strict-mode error) instead of the end of the file.
    """
    lines = ["accountnumber,name,description\n"]
    for i in range(1, rows + 1):
        if i == bad_at:
            lines.append(BAD.format(i=i) + "\n")
        elif quoted_every and i % quoted_every == 0:
            lines.append(f'A-{i},"Smith, John {i}",x\n')
        else:
            lines.append(f"A-{i},Name {i},d\n")
    path = tmp_path / "in.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _read(path: Path, **kw: int) -> tuple[CsvSource, list[SourceRow]]:
    with CsvSource(path, **kw) as src:
        return src, list(src)


@pytest.mark.parametrize("quoted_every", [0, 10])
@pytest.mark.parametrize("bad_at", [1, 500, 1000])
def test_open_quote_fails_only_its_line_and_every_other_row_reads(
    tmp_path: Path, bad_at: int, quoted_every: int
) -> None:
    src, rows = _read(_file(tmp_path, 1000, bad_at, quoted_every=quoted_every))
    assert len(rows) == 1000
    bad = [r for r in rows if r.error is not None]
    assert [r.line_no for r in bad] == [bad_at + 1]
    assert "unreadable record" in str(bad[0].error)
    assert (bad[0].values, bad[0].raw) == ({}, BAD.format(i=bad_at))
    good = [r.values["accountnumber"] for r in rows if r.error is None]
    assert good == [f"A-{i}" for i in range(1, 1001) if i != bad_at]
    assert [r.line_no for r in rows] == list(range(2, 1002))
    acc = src.accounting()
    assert acc == {
        "complete": True,
        "physical_lines": 1001,
        "header_lines": 1,
        "blank_lines": 0,
        "records": 1000,
        "unaccounted_lines": 0,
        "joined_spans": [],
    }


def test_record_longer_than_the_line_limit_fails_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('a,b\n1,"open\nx\ny\nz\n2,ok\n3,"two\nlines"\n', encoding="utf-8")
    src, rows = _read(path, max_record_lines=3)
    assert [(r.line_no, r.error is None) for r in rows] == [
        (2, False),
        (3, False),  # "x" alone: ragged, its text kept
        (4, False),
        (5, False),
        (6, True),
        (7, True),  # a quoted newline within the limit still reads as one record
    ]
    assert "runs past 3 lines" in str(rows[0].error)
    assert rows[0].raw == '1,"open'
    assert rows[5].values == {"a": "3", "b": "two\nlines"}
    assert src.accounting()["unaccounted_lines"] == 0
    assert src.accounting()["physical_lines"] == 8


def test_record_longer_than_the_character_limit_fails(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('a,b\n1,"' + "x" * 50 + "\n" + "y" * 60 + '"\n2,ok\n', encoding="utf-8")
    _, rows = _read(path, max_record_chars=100)
    assert "runs past" in str(rows[0].error)
    assert rows[0].raw == '1,"' + "x" * 50
    assert rows[-1].values == {"a": "2", "b": "ok"}


def test_field_over_the_size_limit_is_rejected_with_its_raw_text(tmp_path: Path) -> None:
    huge = "h" * (DEFAULT_FIELD_LIMIT + 1)
    path = tmp_path / "in.csv"
    path.write_text(f"a,b\n1,{huge}\n2,ok\n", encoding="utf-8")
    _, rows = _read(path)
    assert "field larger than field limit" in str(rows[0].error)
    assert rows[0].raw == f"1,{huge}"
    assert rows[1].values == {"a": "2", "b": "ok"}


def test_quote_closed_much_later_is_one_rejected_record_reported_as_a_joined_span(tmp_path: Path) -> None:
    # The open quote meets a quote followed by a delimiter: csv reads lines 2-4 as one (ragged) record.
    path = tmp_path / "in.csv"
    path.write_text('a,b\n1,"open\n2,x\n3,12 inch",z\n4,ok\n', encoding="utf-8")
    src, rows = _read(path)
    assert [r.line_no for r in rows] == [2, 5]
    assert "over lines 2-4" in str(rows[0].error)
    assert rows[0].raw == '1,"open\n2,x\n3,12 inch",z'
    assert src.accounting()["joined_spans"] == [[2, 4]]
    assert src.accounting()["unaccounted_lines"] == 0


def test_blank_lines_and_a_multiline_header_are_accounted_for(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('"a\nx",b\n\n1,2\n\r\n3,"4\n5"\n', encoding="utf-8")
    src, rows = _read(path)
    assert src.header == ["a\nx", "b"]
    assert [r.line_no for r in rows] == [4, 6]
    acc = src.accounting()
    assert (acc["physical_lines"], acc["header_lines"], acc["blank_lines"], acc["records"]) == (7, 2, 2, 2)
    assert acc["unaccounted_lines"] == 0


def test_a_rejects_row_with_raw_text_is_refused_until_fixed(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        'a,b,crmload_line,crmload_error,crmload_raw\n,,2,ragged,"1,2,3"\n1,2,2,ragged,\n', encoding="utf-8"
    )
    _, rows = _read(path)
    assert "fix the row" in str(rows[0].error)
    assert rows[0].raw == "1,2,3"
    assert (rows[1].error, rows[1].raw) == (None, "")


def test_digests_follow_the_text_of_each_record(tmp_path: Path) -> None:
    path = _file(tmp_path, 20, None)
    first = dict(_read(path)[0].digests())
    assert sorted(first) == list(range(2, 22))
    path.write_text(path.read_text(encoding="utf-8").replace("A-7,", "B-7,"), encoding="utf-8")
    second = dict(CsvSource(path).digests())
    assert [line for line in first if first[line] != second[line]] == [8]


def test_a_partial_read_is_not_checked(tmp_path: Path) -> None:
    with CsvSource(_file(tmp_path, 100, None)) as src:
        next(iter(src))
        acc = src.accounting()
    assert (acc["complete"], acc["unaccounted_lines"]) == (False, None)


def test_limits_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        CsvSource(tmp_path / "x.csv", max_record_lines=0)

"""Acceptance 4: a corpus of bad input. Each case is rejected with a precise reason or loaded exactly; the run
never crashes (a problem with the header itself is one clear fatal line, exit 1, and nothing is sent)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crmload.cli import main
from crmload.load import key_id
from crmload.mock import MockCrm

BIG = "x" * (1024 * 1024)
XML = "<a href=\"x\">&amp; ]]> 'q' </a>"

# (id, file bytes, extra flags, expectation)
#   ("loaded", {attr: value})           exit 0, one record with exactly these values
#   ("rejected", reason, done)          exit 3, the rejects file names the reason; ``done`` rows loaded
#   ("fatal", message)                  exit 1, one line on stderr, nothing sent
#   ("empty",)                          exit 0, no rows
CASES: list[tuple[str, bytes, list[str], tuple[Any, ...]]] = [
    (
        "invalid_utf8",
        b"name,description\nok,fine\nbad\xff\xfe,x\n",
        [],
        (
            "rejected",
            "invalid utf-8 (byte 0xFF at character 4; if the file is not UTF-8, give its --encoding",
            1,
        ),
    ),
    ("latin1_without_encoding", "name\nSociété\n".encode("latin-1"), [], ("rejected", "invalid utf-8", 0)),
    (
        "latin1_with_encoding",
        "name\nSociété\n".encode("latin-1"),
        ["--encoding", "latin-1"],
        ("loaded", {"name": "Société"}),
    ),
    ("bom", b"\xef\xbb\xbfname\nBOM Ltd\n", [], ("loaded", {"name": "BOM Ltd"})),
    (
        "crlf_in_quoted_field",
        b'name,description\r\nX,"line1\r\nline2"\r\n',
        [],
        ("loaded", {"name": "X", "description": "line1\r\nline2"}),
    ),
    ("lone_cr_line_ends", b"name\rOld Mac\r", [], ("loaded", {"name": "Old Mac"})),
    (
        "ragged_short",
        b"name,description\nA\nB,ok\n",
        [],
        ("rejected", "ragged row: 1 fields, header has 2", 1),
    ),
    (
        "ragged_long",
        b"name\nA,extra\n",
        [],
        ("rejected", "ragged row: 2 fields, header has 1 (extra fields: 'extra')", 0),
    ),
    ("unknown_column", b"name,colour\nA,red\n", [], ("fatal", "unknown column(s) for account: 'colour'")),
    (
        "bad_number",
        b"name,numberofemployees\nA,12x\n",
        [],
        ("rejected", "column 'numberofemployees': not a whole number: '12x'", 0),
    ),
    (
        "number_out_of_range",
        b"name,numberofemployees\nA,3000000000\n",
        [],
        ("rejected", "out of range for CrmNumber", 0),
    ),
    (
        "bad_float",
        b"name,address1_latitude\nA,north\n",
        [],
        ("rejected", "column 'address1_latitude': not a number", 0),
    ),
    (
        "bad_date",
        b"name,lastusedincampaign\nA,31/12/2024\n",
        [],
        ("rejected", "column 'lastusedincampaign': not a date", 0),
    ),
    ("impossible_date", b"name,lastusedincampaign\nA,2023-02-29\n", [], ("rejected", "not a date", 0)),
    (
        "bad_money",
        b"name,revenue\nA,12.5.0\n",
        [],
        ("rejected", "column 'revenue': not an amount of money", 0),
    ),
    ("money_with_comma_decimal", b'name,revenue\nA,"12,5"\n', [], ("rejected", "not an amount of money", 0)),
    ("bad_boolean", b"name,creditonhold\nA,maybe\n", [], ("rejected", "not a boolean", 0)),
    (
        "unknown_picklist_label",
        b"name,industrycode\nA,Retail\n",
        [],
        ("rejected", "column 'industrycode': unknown label", 0),
    ),
    ("bad_guid_lookup", b"name,parentaccountid:lookup(account)\nA,xyz\n", [], ("rejected", "not a GUID", 0)),
    (
        # The id is computed without asking CRM; CRM then faults the lookup to a record it does not hold.
        "lookup_to_missing_key",
        b"name,parentaccountid:key(account)\nA,NOPE\n",
        [],
        ("rejected", f"account With Id = {key_id('account', 'NOPE')} Does Not Exist", 0),
    ),
    (
        "xml_metacharacters",
        f'name\n"{XML.replace(chr(34), chr(34) * 2)}"\n'.encode(),
        [],
        ("loaded", {"name": XML}),
    ),
    ("nul_byte", b"name\nA\x00B\n", [], ("rejected", "NUL byte in column 'name'", 0)),
    ("control_character", b"name\nbell\x07\n", [], ("rejected", "control character U+0007", 0)),
    # A 1 MiB field streams through the reader, then meets CRM's MaxLength (account.description: 2000).
    (
        "one_mb_field",
        f"name,description\nBig,{BIG}\n".encode(),
        [],
        ("rejected", "1048576 characters, longer than the maximum length 2000", 0),
    ),
    (
        "field_at_max_length",
        f"name,description\n{'n' * 160},{'d' * 2000}\n".encode(),
        [],
        ("loaded", {"name": "n" * 160, "description": "d" * 2000}),
    ),
    ("empty_file", b"", [], ("empty",)),
    ("empty_file_with_key", b"", ["--key", "accountnumber"], ("empty",)),
    ("header_only", b"name,revenue\n", [], ("empty",)),
    ("blank_lines_only", b"name\n\n\n", [], ("empty",)),
    ("duplicate_headers", b"name,name\nA,B\n", [], ("fatal", "duplicate column 'name' (columns 1 and 2)")),
    ("empty_header_name", b"name,\nA,B\n", [], ("fatal", "header column 2 has no name")),
    (
        "empty_key",
        b"accountnumber,name\n,A\n",
        ["--key", "accountnumber"],
        ("rejected", "key column 'accountnumber' is empty", 0),
    ),
    (
        "duplicate_key_in_file",
        b"accountnumber,name\nK1,A\nK1,B\n",
        ["--key", "accountnumber"],
        ("rejected", "duplicate key 'K1': line 2 has it already", 1),
    ),
    ("embedded_quotes", b'name\n"Say ""hi"", ok"\n', [], ("loaded", {"name": 'Say "hi", ok'})),
    ("astral_and_cjk", "name\nCafé 🚀 東京\n".encode(), [], ("loaded", {"name": "Café 🚀 東京"})),
    (
        "spaces_in_header_and_values",
        b" name , revenue \n  A  , 5 \n",
        [],
        ("loaded", {"name": "A", "revenue": "5"}),
    ),
    ("empty_revenue_is_null", b"name,revenue\nA,\n", [], ("loaded", {"name": "A"})),
    (
        "rejects_columns_ignored",
        b"name,crmload_line,crmload_phase,crmload_error\nA,3,map,old reason\n",
        [],
        ("loaded", {"name": "A"}),
    ),
    (
        "unterminated_quote",
        b'name,description\nA,"never closed\nB,x\n',
        [],
        # Only the line with the open quote is failed; the row after it is read again and loads.
        ("rejected", "unreadable record: unexpected end of data (an unterminated quoted field?)", 1),
    ),
    (
        "text_after_closing_quote",
        b'name,description\n"abc"def,1\nC,2\n',
        [],
        ("rejected", "unreadable record: ',' expected after", 1),
    ),
    ("quote_inside_unquoted_field", b'name\nab"c\n', [], ("loaded", {"name": 'ab"c'})),
]


@pytest.mark.parametrize(("case", "data", "flags", "expect"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_case(  # noqa: PLR0917 - pytest passes fixtures and parameters positionally
    crm: MockCrm,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    data: bytes,
    flags: list[str],
    expect: tuple[Any, ...],
) -> None:
    src = tmp_path / f"{case}.csv"
    src.write_bytes(data)
    code = main(
        [
            "import",
            str(src),
            "--entity",
            "account",
            "--url",
            crm.url,
            "--org",
            "Contoso",
            "--rate",
            "unlimited",
            "--json",
            "--no-progress",
            *flags,
        ]
    )
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    kind = expect[0]
    if kind == "fatal":
        assert code == 1
        assert expect[1] in err
        # Only the preflight (WhoAmI, then one RetrieveMultiple) reached the server: no row was sent.
        assert set(crm.stats()["requests_by_op"]) <= {"Execute", "RetrieveMultiple"}
        return
    summary = json.loads(out)
    assert summary["balanced"], summary["equation"]
    records = crm.records("account")
    if kind == "empty":
        assert (code, summary["read"], records) == (0, 0, [])
    elif kind == "loaded":
        assert code == 0, summary
        assert len(records) == 1
        got = {k: records[0].get(k) for k in expect[1]}
        assert got == expect[1]
        if "revenue" not in expect[1]:
            assert records[0].get("revenue") is None
    else:
        reason, done = expect[1], expect[2]
        assert code == 3
        assert (summary["done"], summary["rejected"]) == (done, summary["read"] - done)
        assert len(records) == done
        rejects = (tmp_path / f"{case}.rejects.csv").read_bytes().decode("utf-8", "surrogateescape")
        assert reason in rejects


def test_corpus_has_at_least_25_kinds() -> None:
    assert len(CASES) >= 25

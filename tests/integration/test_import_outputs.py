"""Files `crmload import` writes beside its input (issue 16 items 6, 7, 11, 12): which paths, what is in them.

Every scenario runs the real CLI against the real mock; the assertions are on bytes, names, modes and mtimes
of the files in the directory, and on the mock's store.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from crmload.cli import main
from crmload.mock import FaultPlan, MockCrm

HEADER = "accountnumber,name,revenue,lastusedincampaign\n"


def _import(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["import", *args, "--json", "--no-progress"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def _accounts(path: Path, n: int, bad: tuple[int, ...] = (), name: str = "Acc") -> Path:
    rows = [HEADER]
    for i in range(1, n + 1):
        date = "2024-02-30" if i in bad else "2024-01-15"
        rows.append(f'A-{i:04d},"{name} {i}, Ltd",{i}.50,{date}\n')
    path.write_text("".join(rows), encoding="utf-8")
    return path


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def _crm(crm: MockCrm) -> list[str]:
    return ["--url", crm.url, "--org", "Contoso", "--rate", "unlimited"]


# -- item 6: --rejects never destroys a file crmload did not create ------------------------------------------


def test_rejects_pointed_at_the_input_is_refused_and_the_input_survives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRMLOAD_URL", raising=False)
    src = _accounts(tmp_path / "in.csv", 5)
    original = src.read_bytes()
    # The scenario exactly (embedded mock): exit 2 and one clear line; --force does not change that.
    for extra in ([], ["--force"]):
        code = main(
            ["import", str(src), "--entity", "account", "--key", "accountnumber", "--rejects", str(src)]
        )
        err = capsys.readouterr().err
        assert code == 2
        assert f"--rejects {src} is the input; choose another path" in err
        assert src.read_bytes() == original
        code = main(["import", str(src), "--entity", "account", "--rejects", f"{tmp_path}/./in.csv", *extra])
        assert code == 2
        capsys.readouterr()
    link = tmp_path / "link.csv"
    os.link(src, link)  # another name for the same file
    assert main(["import", str(src), "--entity", "account", "--rejects", str(link)]) == 2
    assert "is the input" in capsys.readouterr().err
    assert src.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "link.csv"]


def test_rejects_pointed_at_the_journal_or_a_foreign_file_is_refused(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _accounts(tmp_path / "in.csv", 5, bad=(2,))
    journal = tmp_path / "j.sqlite"
    code, _, err = _import(capsys, str(src), "--entity", "account", *_crm(crm), "--journal", str(journal),
                           "--rejects", str(journal))  # fmt: skip
    assert (code, "is the journal" in err, journal.exists()) == (2, True, False)
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own\nnotes,here\n", encoding="utf-8")
    code, _, err = _import(capsys, str(src), "--entity", "account", *_crm(crm), "--rejects", str(notes))
    assert code == 2
    assert "is not a crmload rejects file; refusing to replace it" in err
    assert notes.read_text(encoding="utf-8") == "my,own\nnotes,here\n"
    assert crm.stats()["requests"] == 0  # refused before anything was sent
    code, s, _ = _import(
        capsys, str(src), "--entity", "account", *_crm(crm), "--rejects", str(notes), "--force"
    )
    assert (code, s["rejected"], s["rejects"]) == (3, 1, str(notes))
    assert (
        notes.read_text(encoding="utf-8")
        .splitlines()[0]
        .endswith("crmload_line,crmload_phase,crmload_error,crmload_raw")
    )


def test_an_earlier_rejects_file_stays_until_this_run_rejects_a_row(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _accounts(tmp_path / "in.csv", 6, bad=(3,))
    rejects = tmp_path / "in.rejects.csv"
    common = [str(src), "--entity", "account", "--key", "accountnumber", *_crm(crm)]
    assert _import(capsys, *common)[0] == 3
    first = rejects.read_bytes()
    _accounts(src, 6)  # fixed: no reject this time
    code, s, _ = _import(capsys, *common, "--restart")
    assert (code, s["rejects"], s["stale_files"]) == (0, None, [str(rejects)])
    assert rejects.read_bytes() == first  # not deleted at start, not rewritten
    _accounts(src, 6, bad=(5,))
    code, s, _ = _import(capsys, *common, "--restart")
    assert (code, s["stale_files"]) == (3, [])
    assert [r[0] for r in csv.reader(io.StringIO(rejects.read_text(encoding="utf-8")))][1:] == ["A-0005"]


# -- item 7: a dry run writes nothing ------------------------------------------------------------------------


def test_dry_run_leaves_the_directory_as_it_was_and_reports_on_stdout(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _accounts(tmp_path / "in.csv", 30, bad=(4, 9))
    common = [str(src), "--entity", "account", "--key", "accountnumber", *_crm(crm)]
    assert _import(capsys, *common)[0] == 3  # a real run: journal and rejects file
    before = _snapshot(tmp_path)
    assert {"in.rejects.csv", "in.csv.crmload.sqlite"} <= set(before)
    for extra in ([], ["--restart"], ["--resume"]):
        code = main(["import", *common, "--dry-run", "--no-progress", *extra])
        out = capsys.readouterr().out
        assert code == 3
        assert "line 5 (map, column 'lastusedincampaign'): column 'lastusedincampaign'" in out
        assert "line 10 (map" in out
        assert _snapshot(tmp_path) == before
    assert crm.stats()["requests_by_op"].get("Create") == 28  # the real run's only


# -- item 11: encodings and modes ----------------------------------------------------------------------------


def test_rejects_keep_the_inputs_encoding_and_bom(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = _accounts(tmp_path / "plain.csv", 3, bad=(2,))
    assert _import(capsys, str(plain), "--entity", "account", *_crm(crm))[0] == 3
    assert (tmp_path / "plain.rejects.csv").read_bytes().startswith(b"accountnumber,")  # no BOM
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert _import(capsys, str(bom), "--entity", "account", *_crm(crm))[0] == 3
    assert (tmp_path / "bom.rejects.csv").read_bytes().startswith(b"\xef\xbb\xbfaccountnumber,")


def test_cp1252_rejects_import_again_with_their_encoding_and_same_values(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "legacy.csv"
    text = HEADER + "W-1,Société Générale \u2013 Œuvre,1.50,2024-02-30\nW-2,Café € ok,2.50,2024-01-15\n"
    src.write_bytes(text.encode("cp1252"))
    common = ["--entity", "account", "--key", "accountnumber", "--encoding", "cp1252", *_crm(crm)]
    assert _import(capsys, str(src), *common)[0] == 3
    rejects = tmp_path / "legacy.rejects.csv"
    assert "Société Générale \u2013 Œuvre".encode("cp1252") in rejects.read_bytes()
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    rejects.write_bytes(rejects.read_bytes().replace(b"2024-02-30", b"2024-02-28"))
    code, s, err = _import(capsys, str(rejects), *common)
    assert (code, s["done"]) == (0, 1), err
    names = sorted(r["name"] for r in crm.records("account"))
    assert names == ["Café € ok", "Société Générale \u2013 Œuvre"]


# -- item 12: in-doubt rows with their data ------------------------------------------------------------------


def test_in_doubt_rows_are_written_with_their_columns(
    crm: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crm.configure(FaultPlan(reset_after_commit_rate=0.2, seed=11))
    src = _accounts(tmp_path / "in.csv", 120)
    journal = tmp_path / "j.sqlite"
    common = [str(src), "--entity", "account", *_crm(crm), "--journal", str(journal), "--workers", "2"]
    code, s, _ = _import(capsys, *common)
    assert code == 3
    assert s["in_doubt"] > 5
    assert (s["in_doubt_lines_truncated"], s["in_doubt_file_rows"]) == (False, s["in_doubt"])
    path = tmp_path / "in.in-doubt.csv"
    assert s["in_doubt_file"] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with contextlib.closing(sqlite3.connect(journal)) as db:
        in_doubt = sorted(n for (n,) in db.execute("SELECT line FROM rows WHERE state = 'in_doubt'"))
    source = list(csv.reader(io.StringIO(src.read_text(encoding="utf-8"))))
    written = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert written[0] == [*source[0], "crmload_line", "crmload_phase", "crmload_error", "crmload_raw"]
    assert sorted(int(r[4]) for r in written[1:]) == in_doubt
    for row in written[1:]:
        assert row[:4] == source[int(row[4]) - 1]  # line n is source row n-1 (the header is line 1)
        assert "may have been applied" in row[6]
    # A resume rewrites the file from the journal and the source: the same rows, none lost or doubled.
    crm.configure(FaultPlan())
    code, s, _ = _import(capsys, *common, "--resume")
    assert (code, s["in_doubt_file_rows"]) == (3, len(in_doubt))
    again = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert sorted(int(r[4]) for r in again[1:]) == in_doubt
    assert all(r[6].startswith("in doubt since an earlier run") for r in again[1:])

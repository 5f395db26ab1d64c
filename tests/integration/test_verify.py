"""``crmload verify``: a clean load passes; the mock's silent drops and mutations after commit (bugs only a
verification catches) are found exactly, written to the discrepancy CSV, and exit 3; records no row names are
``extra`` with ``--all``; reads are batched (requests counted), never an aggregate count. Also the issue's
acceptance 1, scaled down: export (2007) -> import (Organization service) -> verify PASS -> same export."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from crmload.cli import main
from crmload.client import CrmClient
from crmload.mock import FaultPlan, MockCrm

HEADER = "accountnumber,name,revenue,numberofemployees,industrycode,lastusedincampaign,address1_city"


def _source(path: Path, n: int) -> Path:
    cities = ["Kraków", "東京", "São Paulo", ""]
    lines = [HEADER]
    for i in range(n):
        rev = f"{i * 10}.5" if i % 3 else ""
        name = f'"Acme, {i}"' if i % 2 else f"Zoë {i}"
        lines.append(
            f"A-{i:05d},{name},{rev},{i},{i % 5 + 1},2021-0{i % 9 + 1}-02T10:00:00+02:00,{cities[i % 4]}"
        )
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def _cli(argv: list[str]) -> tuple[int, dict[str, object]]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main([*argv, "--json"])
    return rc, json.loads(buf.getvalue().strip().splitlines()[-1])


def _import(url: str, src: Path, *extra: str) -> dict[str, object]:
    rc, summary = _cli(
        [
            "import",
            str(src),
            "--entity",
            "account",
            "--url",
            url,
            "--org",
            "Contoso",
            "--rate",
            "unlimited",
            "--no-progress",
            *extra,
        ]
    )
    assert rc == 0, summary
    return summary


def _verify(url: str, src: Path, *extra: str) -> tuple[int, dict[str, object]]:
    return _cli(
        ["verify", str(src), "--entity", "account", "--url", url, "--org", "Contoso", "--no-progress", *extra]
    )


@pytest.mark.parametrize("endpoint", ["2007", "2011"])
def test_clean_load_passes_with_batched_reads(endpoint: str, crm: MockCrm, tmp_path: Path) -> None:
    url = crm.url if endpoint == "2007" else crm.url2011
    src = _source(tmp_path / "a.csv", 45)
    _import(url, src, "--key", "accountnumber")
    before = crm.stats()["requests"]
    rc, doc = _verify(url, src, "--key", "accountnumber", "--batch", "10")
    [ent] = doc["entities"]
    assert rc == 0
    assert ent["result"] == "PASS"
    assert (ent["rows"], ent["checked"], ent["present"], ent["compared"]) == (45, 45, 45, 45)
    assert ent["journal"] == {"done": 45}
    assert ent["kinds"] == {}
    assert ent["requests"] == 5 == crm.stats()["requests"] - before  # 45 ids in batches of 10
    with open(doc["discrepancies"], encoding="utf-8") as fh:
        assert len(list(csv.reader(fh))) == 1  # the header only


@pytest.mark.parametrize(("endpoint", "keyed"), [("2007", True), ("2011", False)])
def test_drops_and_mutations_are_found_exactly(
    endpoint: str, keyed: bool, crm_factory: Callable[..., MockCrm], tmp_path: Path
) -> None:
    crm = crm_factory(faults=FaultPlan(silent_drop_rate=0.05, mutate_rate=0.05, seed=11))
    url = crm.url if endpoint == "2007" else crm.url2011
    src = _source(tmp_path / "a.csv", 300)
    key = ["--key", "accountnumber"] if keyed else []
    summary = _import(url, src, *key)
    assert summary["done"] == 300  # the import believes every row landed
    bad = crm.stats()["corrupted"]
    dropped = {d["id"] for d in bad["silently_dropped"]}
    mutated = {(d["id"], d["field"]) for d in bad["mutated"]}
    assert dropped
    assert mutated
    rc, doc = _verify(url, src, *key, "--discrepancies", str(tmp_path / "d.csv"))
    assert rc == 3
    [ent] = doc["entities"]
    assert ent["result"] == "FAIL"
    with (tmp_path / "d.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["id"] for r in rows if r["kind"] == "lost"} == dropped
    assert {(r["id"], r["field"]) for r in rows if r["kind"] == "differs"} == mutated
    assert len(rows) == len(dropped) + len(mutated)
    assert ent["kinds"] == {"lost": len(dropped), "differs": len(mutated)}
    assert ent["present"] == 300 - len(dropped)


def test_extra_records_and_sample(crm: MockCrm, tmp_path: Path) -> None:
    src = _source(tmp_path / "a.csv", 60)
    _import(crm.url, src, "--key", "accountnumber")
    with CrmClient(crm.url, org="Contoso") as client:
        stray = client.create("account", {"name": "not in the file"})
    rc, doc = _verify(crm.url, src, "--key", "accountnumber", "--all", "--sample", "6")
    [ent] = doc["entities"]
    assert rc == 3
    assert ent["kinds"] == {"extra": 1}
    assert ent["checked"] == 60
    assert 0 < ent["compared"] < 60
    assert ent["requests"] == 3  # ids-only read, the sampled rows' columns, the --all id-only page
    with open(doc["discrepancies"], encoding="utf-8") as fh:
        assert str(stray) in fh.read()


def test_without_journal_rows_are_checked_by_key(crm: MockCrm, tmp_path: Path) -> None:
    src = _source(tmp_path / "a.csv", 20)
    _import(crm.url, src, "--key", "accountnumber", "--journal", str(tmp_path / "j.sqlite"))
    with CrmClient(crm.url, org="Contoso") as client:
        gone = next(iter(client.retrieve_multiple("account", columns=["accountid"])))["accountid"]
        client.delete("account", gone.id if hasattr(gone, "id") else gone)
    rc, doc = _verify(crm.url, src, "--key", "accountnumber", "--no-journal")
    [ent] = doc["entities"]
    assert rc == 3
    assert ent["kinds"] == {"missing": 1}
    assert ent["journal"] == {}


def test_acceptance_round_trip_scaled(crm_factory: Callable[..., MockCrm], tmp_path: Path) -> None:
    """Acceptance 1 at 1/25 scale (the benchmark runs 50,000): export from 2007 with pages of 500, import
    through the Organization service, verify PASS, and a second export is byte-identical."""
    a, b = crm_factory(), crm_factory()
    src = _source(tmp_path / "seed.csv", 2000)
    _import(a.url, src, "--key", "accountnumber")
    cols = "accountid," + HEADER
    first = tmp_path / "export1.csv"
    rc, exp = _cli(
        [
            "export",
            "--entity",
            "account",
            "--url",
            a.url,
            "--org",
            "Contoso",
            "--columns",
            cols,
            "--page-size",
            "500",
            "-o",
            str(first),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert (exp["rows"], exp["pages"]) == (2000, 4)
    _import(b.url2011, first, "--no-trim")
    rc, doc = _verify(b.url2011, first, "--no-trim")
    assert rc == 0
    assert doc["entities"][0]["present"] == 2000
    second = tmp_path / "export2.csv"
    rc, _ = _cli(
        [
            "export",
            "--entity",
            "account",
            "--url",
            b.url2011,
            "--org",
            "Contoso",
            "--columns",
            cols,
            "--page-size",
            "500",
            "-o",
            str(second),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert second.read_bytes() == first.read_bytes()


def test_mock_cli_takes_the_corruption_rates() -> None:
    from crmload.cli import build_parser
    from crmload.cli.mock_cmd import _plan

    args = build_parser().parse_args(["mock", "--silent-drop-rate", "0.01", "--mutate-rate", "0.02"])
    plan = _plan(args)
    assert (plan.silent_drop_rate, plan.mutate_rate) == (0.01, 0.02)


def _journal_states(path: Path) -> dict[str, int]:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
    finally:
        con.close()


def test_in_doubt_unkeyed_creates_settle_by_match(
    crm_factory: Callable[..., MockCrm], tmp_path: Path
) -> None:
    """Acceptance 4: unkeyed creates under resets after (and before) commit; --settle --match accountnumber
    settles every in-doubt row (found: done with its id; not found: sent again by --resume), no duplicates."""
    plan = FaultPlan(reset_after_commit_rate=0.05, reset_before_commit_rate=0.03, seed=5)
    crm = crm_factory(faults=plan)
    src = _source(tmp_path / "a.csv", 200)
    journal = tmp_path / "j.sqlite"
    base = ["--entity", "account", "--url", crm.url, "--org", "Contoso", "--journal", str(journal)]
    rc, summary = _cli(["import", str(src), *base, "--rate", "unlimited", "--no-progress"])
    assert rc == 3
    in_doubt = summary["in_doubt"]
    assert in_doubt > 0
    crm.configure(None)
    stored_before = crm.stats()["records_by_entity"]["account"]
    rc, doc = _verify(crm.url, src, "--journal", str(journal), "--settle", "--match", "accountnumber")
    settle = doc["settle"]
    assert settle["in_doubt"] == in_doubt
    assert settle["ambiguous"] == 0
    assert settle["settled"] + settle["resend"] == in_doubt
    assert settle["settled"] == stored_before - summary["done"]  # every record that landed, found
    assert _journal_states(journal).get("in_doubt", 0) == 0
    assert rc == (3 if settle["resend"] else 0)
    rc, summary = _cli(["import", str(src), *base, "--rate", "unlimited", "--no-progress", "--resume"])
    assert rc == 0
    assert crm.stats()["records_by_entity"]["account"] == 200  # no duplicates, none missing
    numbers = [r["accountnumber"] for r in crm.records("account")]
    assert len(set(numbers)) == 200
    rc, doc = _verify(crm.url, src, "--journal", str(journal))
    assert rc == 0
    assert doc["entities"][0]["present"] == 200


def test_settle_never_guesses(crm: MockCrm, tmp_path: Path) -> None:
    src = _source(tmp_path / "a.csv", 30)
    journal = tmp_path / "j.sqlite"
    _import(crm.url, src, "--journal", str(journal))
    import sqlite3

    con = sqlite3.connect(journal)  # two rows whose answers were lost, as an interrupted run leaves them
    con.execute("UPDATE rows SET state = 'in_doubt', crm_id = NULL WHERE line IN (2, 3)")
    con.commit()
    con.close()
    with CrmClient(crm.url, org="Contoso") as client:  # a second record with row 2's accountnumber
        client.create("account", {"accountnumber": "A-00000", "name": "twin"})
    rc, doc = _verify(crm.url, src, "--journal", str(journal), "--settle", "--match", "accountnumber")
    assert doc["settle"] == {"in_doubt": 2, "settled": 1, "resend": 0, "ambiguous": 1}
    assert _journal_states(journal)["in_doubt"] == 1
    assert rc == 3

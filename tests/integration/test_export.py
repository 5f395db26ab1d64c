"""``crmload export``: export -> import into a fresh mock -> export writes the same bytes, on both endpoints,
with messy data (accents, CJK, commas, quotes, CRLF inside fields, empty values, nulls), lookups as
``entity:GUID`` or by key, pages counted by the mock; and a SIGKILLed export resumes to the same file."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from crmload.cli import main
from crmload.client import CrmClient
from crmload.load.keys import key_id
from crmload.mock import FaultPlan, MockCrm
from crmload.types import Customer, Money, Picklist

ACCOUNT_COLUMNS = (
    "accountid,accountnumber,name,description,revenue,numberofemployees,industrycode,creditonhold,"
    "lastusedincampaign,address1_city,address1_latitude"
)
NAMES = ["Zoë & Søn, Ltd", '"Alpine" GmbH', "東京商事", "Line one\r\nline two", "Café, Málaga", "", "Plain"]
N_ACCOUNTS = 30


def _url(crm: MockCrm, endpoint: str) -> str:
    return crm.url if endpoint == "2007" else crm.url2011


def _seed(crm: MockCrm, *, keyed: bool = False) -> list[uuid.UUID]:
    """Messy accounts (and contacts pointing at them) written through the 2007 endpoint."""
    ids = []
    with CrmClient(crm.url, org="Contoso", rate="unlimited") as client:
        for i in range(N_ACCOUNTS):
            number = f"A-{i:04d}"
            attrs: dict[str, object] = {"accountnumber": number, "name": NAMES[i % len(NAMES)] + f" {i}"}
            if i % 3:
                attrs["revenue"] = Money(Decimal(f"{i * 1000}.{i % 100:02d}"))
                attrs["numberofemployees"] = i
                attrs["industrycode"] = Picklist(i % 7 + 1)
                attrs["creditonhold"] = bool(i % 2)
                attrs["address1_latitude"] = i / 7
            if i % 4 == 0:
                attrs["description"] = ""  # an empty string, not a null
            if i % 5:
                zone = timezone(timedelta(hours=i % 5))
                attrs["lastusedincampaign"] = datetime(2020, 1, 1 + i % 28, 9, 30, tzinfo=zone)
            attrs["address1_city"] = ["Kraków", "São Paulo", "北京", None][i % 4]
            rid = key_id("account", number) if keyed else None
            ids.append(client.create("account", attrs, id=rid))
        for i in range(12):
            parent = Customer("account", ids[(i * 7) % N_ACCOUNTS]) if i % 4 else None
            client.create("contact", {"lastname": f'Ł{i}, "{i}"', "parentcustomerid": parent})
    return ids


def _export(url: str, out: Path, entity: str, columns: str, *extra: str) -> dict[str, object]:
    argv = [
        "export",
        "--entity",
        entity,
        "--url",
        url,
        "--org",
        "Contoso",
        "--columns",
        columns,
        "-o",
        str(out),
    ]
    rc, summary = _run_json([*argv, *extra, "--json", "--no-progress"])
    assert rc == 0
    return summary


def _run_json(argv: list[str]) -> tuple[int, dict[str, object]]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    return rc, json.loads(buf.getvalue().strip().splitlines()[-1])


def _import(url: str, path: Path, entity: str, tmp: Path, *extra: str) -> None:
    journal = tmp / f"{path.name}.sqlite"
    argv = ["import", str(path), "--entity", entity, "--url", url, "--org", "Contoso", "--rate", "unlimited"]
    argv.append("--no-trim")  # the export wrote strings exactly as CRM holds them
    rc, summary = _run_json([*argv, "--journal", str(journal), "--no-progress", "--json", *extra])
    assert rc == 0, summary
    assert summary["done"] == summary["read"]


def _retrieve_requests(crm: MockCrm, endpoint: str) -> int:
    by = crm.stats()["requests_by_dialect"].get(endpoint, {})
    return int(by.get("Execute" if endpoint == "2007" else "Execute:RetrieveMultiple", 0))


@pytest.mark.parametrize("endpoint", ["2007", "2011"])
def test_round_trip_is_byte_identical(
    endpoint: str, crm_factory: Callable[..., MockCrm], tmp_path: Path
) -> None:
    a, b = crm_factory(), crm_factory()
    _seed(a)
    first, first_c = tmp_path / "accounts.csv", tmp_path / "contacts.csv"
    summary = _export(_url(a, endpoint), first, "account", ACCOUNT_COLUMNS, "--page-size", "7")
    assert (summary["rows"], summary["pages"]) == (N_ACCOUNTS, 5)
    assert _retrieve_requests(a, endpoint) == 5
    _export(_url(a, endpoint), first_c, "contact", "contactid,lastname,parentcustomerid")
    with first.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == N_ACCOUNTS + 1
    assert rows[0][4] == "revenue:money"
    assert rows[0][6] == "industrycode:picklist"
    assert any("\r\n" in r[2] for r in rows[1:])
    assert any("東京" in r[2] for r in rows[1:])
    assert all(r[8] == "" or r[8].endswith("Z") for r in rows[1:])  # dates in UTC
    assert "account:" in first_c.read_text(encoding="utf-8")

    _import(_url(b, endpoint), first, "account", tmp_path)
    _import(_url(b, endpoint), first_c, "contact", tmp_path)
    assert b.stats()["records_by_entity"] == {"account": N_ACCOUNTS, "contact": 12}

    second, second_c = tmp_path / "accounts2.csv", tmp_path / "contacts2.csv"
    _export(_url(b, endpoint), second, "account", ACCOUNT_COLUMNS, "--page-size", "7")
    _export(_url(b, endpoint), second_c, "contact", "contactid,lastname,parentcustomerid")
    assert second.read_bytes() == first.read_bytes()
    assert second_c.read_bytes() == first_c.read_bytes()


def test_lookups_by_key_round_trip(crm_factory: Callable[..., MockCrm], tmp_path: Path) -> None:
    a, b = crm_factory(), crm_factory()
    _seed(a, keyed=True)
    accounts, contacts = tmp_path / "accounts.csv", tmp_path / "contacts.csv"
    _export(a.url, accounts, "account", "accountnumber,name")
    summary = _export(
        a.url, contacts, "contact", "contactid,lastname,parentcustomerid", "--key-of", "account=accountnumber"
    )
    assert summary["key_records"] == N_ACCOUNTS
    text = contacts.read_text(encoding="utf-8")
    assert "parentcustomerid:key(account)" in text
    assert "account:" not in text
    assert "A-00" in text
    _import(b.url, accounts, "account", tmp_path, "--key", "accountnumber")
    _import(b.url, contacts, "contact", tmp_path)
    again = tmp_path / "contacts2.csv"
    _export(
        b.url, again, "contact", "contactid,lastname,parentcustomerid", "--key-of", "account=accountnumber"
    )
    assert again.read_bytes() == contacts.read_bytes()


def test_fetch_export_on_the_organization_service(crm: MockCrm, tmp_path: Path) -> None:
    _seed(crm)
    fetch = tmp_path / "q.xml"
    fetch.write_text(
        "<fetch mapping='logical'><entity name='account'><attribute name='accountid'/>"
        "<attribute name='name'/><attribute name='revenue'/>"
        "<filter><condition attribute='creditonhold' operator='eq' value='1'/></filter></entity></fetch>"
    )
    out = tmp_path / "f.csv"
    rc, summary = _run_json(
        ["export", "--fetch", str(fetch), "--url", crm.url2011, "--page-size", "4", "-o", str(out), "--json"]
    )
    wanted = sum(1 for r in crm.records("account") if r.get("creditonhold") is True)
    assert rc == 0
    assert summary["rows"] == wanted
    assert summary["pages"] == -(-wanted // 4)
    assert out.read_text(encoding="utf-8").splitlines()[0] == "accountid,name,revenue:money"


def test_usage_errors_exit_2(crm: MockCrm, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    out.write_text("keep me")
    base = ["export", "--entity", "account", "--url", crm.url, "--org", "Contoso", "--json"]
    assert _run_json([*base, "-o", str(out)])[0] == 2  # no columns named
    assert _run_json([*base, "--columns", "name", "-o", str(out)])[0] == 2  # exists, no --force
    assert out.read_text() == "keep me"
    assert _run_json([*base, "--columns", "name", "-o", str(tmp_path / "y.csv"), "--resume"])[0] == 2
    assert (
        _run_json([*base, "--columns", "name", "--where", "nosuch=1", "-o", str(tmp_path / "z.csv")])[0] == 2
    )
    fetch = tmp_path / "q.xml"
    fetch.write_text("<fetch><entity name='account'><attribute name='name'/></entity></fetch>")
    assert _run_json([*base, "--fetch", str(fetch), "-o", str(tmp_path / "f.csv")])[0] == 2
    assert not (tmp_path / "f.csv").exists()


def test_sigkilled_export_resumes_to_the_same_file(
    crm_factory: Callable[..., MockCrm], tmp_path: Path
) -> None:
    crm = crm_factory(tokens={"s3cr3t-token": "alice"})
    _seed(crm)
    url = crm.url2011.replace("http://", "http://someone:hunter2@")
    cols = "accountid,name,revenue,lastusedincampaign,description"
    whole = tmp_path / "whole.csv"
    env = {**os.environ, "TOK": "s3cr3t-token"}
    os.environ["TOK"] = "s3cr3t-token"
    try:
        _export(url, whole, "account", cols, "--page-size", "2", "--token-env", "TOK")
    finally:
        del os.environ["TOK"]
    crm.configure(FaultPlan(latency_ms=40))  # slow pages, so the kill lands mid-export
    out = tmp_path / "out.csv"
    state = tmp_path / "out.csv.export-state.json"
    argv = [
        sys.executable,
        "-m",
        "crmload",
        "export",
        "--entity",
        "account",
        "--url",
        url,
        "--org",
        "Contoso",
    ]
    argv += ["--columns", cols, "--page-size", "2", "--token-env", "TOK", "-o", str(out), "--no-progress"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(3000):
            if state.exists() and json.loads(state.read_text())["pages"] >= 3:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    saved = json.loads(state.read_text())
    assert 3 <= saved["pages"] < N_ACCOUNTS // 2
    assert "hunter2" not in state.read_text()
    assert "s3cr3t" not in state.read_text()
    crm.configure(None)
    before = _retrieve_requests(crm, "2011")
    os.environ["TOK"] = "s3cr3t-token"
    try:
        summary = _export(url, out, "account", cols, "--page-size", "2", "--token-env", "TOK", "--resume")
    finally:
        del os.environ["TOK"]
    assert summary["resumed_at_page"] == saved["pages"] + 1
    assert _retrieve_requests(crm, "2011") - before == N_ACCOUNTS // 2 - saved["pages"]
    assert out.read_bytes() == whole.read_bytes()
    assert not state.exists()


@pytest.mark.parametrize("endpoint", ["2007", "2011"])
def test_all_columns_round_trip(endpoint: str, crm_factory: Callable[..., MockCrm], tmp_path: Path) -> None:
    a, b = crm_factory(), crm_factory()
    _seed(a)
    first, second = tmp_path / "1.csv", tmp_path / "2.csv"
    argv = ["export", "--entity", "account", "--org", "Contoso", "--all-columns", "--no-progress", "--json"]
    rc, summary = _run_json([*argv, "--url", _url(a, endpoint), "-o", str(first)])
    assert rc == 0
    header = summary["header"]
    assert header[0] == "accountid"
    assert len(header) > 100  # every attribute import can load
    _import(_url(b, endpoint), first, "account", tmp_path)
    assert _run_json([*argv, "--url", _url(b, endpoint), "-o", str(second)])[0] == 0
    assert second.read_bytes() == first.read_bytes()

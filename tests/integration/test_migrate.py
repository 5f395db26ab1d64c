"""``crmload migrate``: plans against the mock CRM, judged by its store (each lookup by id) and counts."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crmload.cli import main
from crmload.load import key_id
from crmload.mock import MockCrm

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plan"


def migrate(*argv: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["migrate", *argv, "--json", "--no-progress"])
    return code, json.loads(out.getvalue())


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_plan(folder: Path, loads: list[dict[str, str]]) -> Path:
    text = ""
    for ld in loads:
        text += "[[load]]\n" + "".join(f'{k} = "{v}"\n' for k, v in ld.items()) + "\n"
    (folder / "plan.toml").write_text(text, encoding="utf-8")
    return folder / "plan.toml"


def by_id(crm: MockCrm, entity: str) -> dict[str, dict[str, Any]]:
    return {r[f"{entity}id"]: r for r in crm.records(entity)}


def ref(record: dict[str, Any], attr: str) -> str | None:
    value = record.get(attr)
    return value["id"] if isinstance(value, dict) else None


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_example_plan_loads_every_record_with_every_lookup_pointing_at_the_right_record(
    crm: MockCrm, tmp_path: Path
) -> None:
    plan_dir = tmp_path / "plan"
    shutil.copytree(EXAMPLE, plan_dir)
    code, out = migrate(str(plan_dir / "migrate.toml"), "--url", crm.url2011)
    assert code == 0, out
    assert out["balanced"]
    assert out["rejected"] == 0
    assert out["read"] == out["done"]
    accounts, contacts, opps = by_id(crm, "account"), by_id(crm, "contact"), by_id(crm, "opportunity")
    for row in read_rows(plan_dir / "accounts.csv"):
        rec = accounts[str(key_id("account", row["account_code"]))]
        want_parent = str(key_id("account", row["parent_code"])) if row["parent_code"] else None
        want_primary = str(key_id("contact", row["primary_contact"])) if row["primary_contact"] else None
        assert ref(rec, "parentaccountid") == want_parent
        assert ref(rec, "primarycontactid") == want_primary
    for row in read_rows(plan_dir / "contacts.csv"):
        rec = contacts[str(key_id("contact", row["contact_code"]))]
        assert ref(rec, "parentcustomerid") == str(key_id("account", row["account_code"]))
    for row in read_rows(plan_dir / "opportunities.csv"):
        rec = opps[str(key_id("opportunity", row["opportunity_code"]))]
        assert ref(rec, "customerid") == str(key_id("account", row["account_code"]))
        want = str(key_id("contact", row["decision_maker"])) if row["decision_maker"] else None
        assert ref(rec, "new_decisionmakerid") == want
    assert len(accounts) == 40
    assert len(contacts) == 100
    assert len(opps) == 60
    # The self-reference took no update pass; the accounts <-> contacts cycle took exactly one, for the
    # accounts that name a primary contact.
    with_primary = sum(1 for r in read_rows(plan_dir / "accounts.csv") if r["primary_contact"])
    assert crm.stats()["items_by_op"].get("Update", 0) == with_primary


def test_a_plan_listing_contacts_before_accounts_still_loads_parents_first(
    crm: MockCrm, tmp_path: Path
) -> None:
    write_csv(
        tmp_path / "contacts.csv",
        ["contact_code", "account_code", "lastname"],
        [[f"C{i}", f"A{i % 7}", f"L{i}"] for i in range(30)],
    )
    write_csv(
        tmp_path / "accounts.csv", ["account_code", "name"], [[f"A{i}", f"Account {i}"] for i in range(7)]
    )
    (tmp_path / "contacts.map.toml").write_text(
        '[columns]\nparentcustomerid = { lookup = "account", key = "account_code" }\n'
    )
    plan = write_plan(
        tmp_path,
        [
            {"file": "contacts.csv", "entity": "contact", "key": "contact_code", "map": "contacts.map.toml"},
            {"file": "accounts.csv", "entity": "account", "key": "account_code"},
        ],
    )
    code, out = migrate(str(plan), "--url", crm.url2011)
    assert code == 0, out
    assert out["order"][:2] == ["tier 1: accounts.csv (account)", "tier 2: contacts.csv (contact)"]
    # The mock refuses a lookup to a record it does not hold: every contact landed with its account.
    contacts = by_id(crm, "contact")
    assert len(contacts) == 30
    for i in range(30):
        assert ref(contacts[str(key_id("contact", f"C{i}"))], "parentcustomerid") == str(
            key_id("account", f"A{i % 7}")
        )


def _tree(n: int, seed: int) -> list[list[str]]:
    """Accounts whose parents come after them in the file (the file is written leaves first)."""
    rng = random.Random(seed)
    rows = [[f"A{i}", f"Account {i}", "" if i < 2 else f"A{rng.randrange(0, i // 2)}"] for i in range(n)]
    return rows[::-1]


def test_acyclic_self_reference_of_5000_rows_loads_in_one_pass_without_updates(
    crm: MockCrm, tmp_path: Path
) -> None:
    rows = _tree(5000, seed=3)
    write_csv(tmp_path / "accounts.csv", ["account_code", "name", "parent_code"], rows)
    (tmp_path / "a.map.toml").write_text(
        '[columns]\nparentaccountid = { lookup = "account", key = "parent_code" }\n'
    )
    plan = write_plan(
        tmp_path, [{"file": "accounts.csv", "entity": "account", "key": "account_code", "map": "a.map.toml"}]
    )
    code, out = migrate(str(plan), "--url", crm.url2011)
    assert code == 0, out
    items = crm.stats()["items_by_op"]
    assert items.get("Create") == 5000
    assert items.get("Update", 0) == 0
    accounts = by_id(crm, "account")
    for code_, _name, parent in rows:
        want = str(key_id("account", parent)) if parent else None
        assert ref(accounts[str(key_id("account", code_))], "parentaccountid") == want
    assert out["loads"][0]["passes"] > 1
    assert len(out["loads"]) == 1  # levels, and no links pass


def test_a_genuine_cycle_is_closed_by_one_batched_update_pass(crm: MockCrm, tmp_path: Path) -> None:
    rows = [["A", "a", "B"], ["B", "b", "A"]] + [[f"X{i}", f"x{i}", "A" if i % 2 else ""] for i in range(40)]
    write_csv(tmp_path / "accounts.csv", ["account_code", "name", "parent_code"], rows)
    (tmp_path / "a.map.toml").write_text(
        '[columns]\nparentaccountid = { lookup = "account", key = "parent_code" }\n'
    )
    plan = write_plan(
        tmp_path, [{"file": "accounts.csv", "entity": "account", "key": "account_code", "map": "a.map.toml"}]
    )
    code, out = migrate(str(plan), "--url", crm.url2011)
    assert code == 0, out
    linked = sum(1 for r in rows if r[2])
    stats = crm.stats()
    assert stats["items_by_op"]["Create"] == len(rows)
    assert stats["items_by_op"]["Update"] == linked
    assert [ld["kind"] for ld in out["loads"]] == ["create", "links"]
    assert out["loads"][1]["batches"] == 1
    accounts = by_id(crm, "account")
    for code_, _n, parent in rows:
        want = str(key_id("account", parent)) if parent else None
        assert ref(accounts[str(key_id("account", code_))], "parentaccountid") == want


def test_children_of_rejected_parents_are_rejected_naming_the_line_and_load_after_the_fix(
    crm: MockCrm, tmp_path: Path
) -> None:
    bad = set(range(0, 100, 10))  # 10 accounts with a revenue that is no number
    accounts = [[f"A{i}", f"Account {i}", "oops" if i in bad else "100.5"] for i in range(100)]
    write_csv(tmp_path / "accounts.csv", ["account_code", "name", "revenue"], accounts)
    contacts, n = [], 0
    for i in sorted(bad):
        for _ in range(4 if n < 36 else 1):
            contacts.append([f"C{len(contacts)}", f"A{i}", "child"])
            n += 1
    contacts = contacts[:37]
    good = [i for i in range(100) if i not in bad][:20]
    contacts += [[f"C{len(contacts) + j}", f"A{i}", "fine"] for j, i in enumerate(good)]
    write_csv(tmp_path / "contacts.csv", ["contact_code", "account_code", "lastname"], contacts)
    (tmp_path / "a.map.toml").write_text('[columns]\nrevenue = { type = "money" }\n')
    (tmp_path / "c.map.toml").write_text(
        '[columns]\nparentcustomerid = { lookup = "account", key = "account_code" }\n'
    )
    plan = write_plan(
        tmp_path,
        [
            {"file": "accounts.csv", "entity": "account", "key": "account_code", "map": "a.map.toml"},
            {"file": "contacts.csv", "entity": "contact", "key": "contact_code", "map": "c.map.toml"},
        ],
    )
    code, out = migrate(str(plan), "--url", crm.url2011)
    assert code == 3
    acc, con = out["loads"]
    assert (acc["rejected"], con["rejected"], con["done"]) == (10, 37, 20)
    assert out["balanced"]
    rejects = read_rows(tmp_path / "contacts.rejects.csv")
    assert len(rejects) == 37
    for r in rejects:
        line = int(r["account_code"][1:]) + 2  # header is line 1
        assert r["crmload_phase"] == "parent"
        assert r["crmload_error"].startswith(f"parent account line {line} was rejected: ")
    assert len(crm.records("contact")) == 20
    # Fix the accounts' rejects file and import it again, as the summary says; then resume the plan.
    fixed = tmp_path / "accounts.fixed.csv"
    rows = read_rows(tmp_path / "accounts.rejects.csv")
    write_csv(fixed, ["account_code", "name", "revenue"], [[r["account_code"], r["name"], "7"] for r in rows])
    assert (
        main(
            [
                "import",
                str(fixed),
                "--entity",
                "account",
                "--key",
                "account_code",
                "--map",
                str(tmp_path / "a.map.toml"),
                "--url",
                crm.url2011,
                "--no-progress",
                "-q",
            ]
        )
        == 0
    )
    code, out = migrate(str(plan), "--url", crm.url2011, "--resume")
    con = out["loads"][1]
    assert (con["done"], con["rejected"]) == (57, 0), out
    contacts_now = by_id(crm, "contact")
    assert len(contacts_now) == 57
    for c_code, a_code, _ln in contacts:
        assert ref(contacts_now[str(key_id("contact", c_code))], "parentcustomerid") == str(
            key_id("account", a_code)
        )
    assert code == 3  # the plan's own accounts rows stay rejected in its journal: they were fixed elsewhere


def test_resume_refuses_a_changed_plan_naming_the_change_and_a_rerun_needs_resume(
    crm: MockCrm, tmp_path: Path
) -> None:
    write_csv(tmp_path / "accounts.csv", ["account_code", "name"], [["A1", "one"]])
    (tmp_path / "a.map.toml").write_text("[columns]\n")
    plan = write_plan(
        tmp_path, [{"file": "accounts.csv", "entity": "account", "key": "account_code", "map": "a.map.toml"}]
    )
    assert migrate(str(plan), "--url", crm.url2011)[0] == 0
    code, out = migrate(str(plan), "--url", crm.url2011)
    assert code == 1
    assert "--resume to continue" in out["fatal"]
    (tmp_path / "a.map.toml").write_text("[options]\ntrim = false\n")
    code, out = migrate(str(plan), "--url", crm.url2011, "--resume")
    assert code == 1
    assert "load 1 (accounts.csv): map file a.map.toml changed" in out["fatal"]
    code, out = migrate(str(plan), "--url", crm.url2011, "--restart")
    assert code == 0
    assert out["loads"][0]["already_present"] == 1


def test_dry_run_sends_nothing_and_names_references_no_row_defines(crm: MockCrm, tmp_path: Path) -> None:
    write_csv(tmp_path / "accounts.csv", ["account_code", "name"], [["A1", "one"]])
    write_csv(
        tmp_path / "contacts.csv",
        ["contact_code", "account_code", "lastname"],
        [["C1", "A1", "x"], ["C2", "A9", "y"]],
    )
    (tmp_path / "c.map.toml").write_text(
        '[columns]\nparentcustomerid = { lookup = "account", key = "account_code" }\n'
    )
    plan = write_plan(
        tmp_path,
        [
            {"file": "contacts.csv", "entity": "contact", "key": "contact_code", "map": "c.map.toml"},
            {"file": "accounts.csv", "entity": "account", "key": "account_code"},
        ],
    )
    code, out = migrate(str(plan), "--url", crm.url2011, "--dry-run")
    assert code == 0
    assert out["dry_run"]
    assert crm.stats()["requests"] == 0
    assert out["unresolved_lookups"] == 1
    assert out["unresolved_rows"][0] == {
        "file": "contacts.csv",
        "line": 3,
        "column": "account_code",
        "error": "no row of the plan has account key 'A9'",
    }
    assert not (tmp_path / "plan.toml.crmload").exists()


@pytest.mark.parametrize("field", ["entity", "file"])
def test_a_plan_missing_a_field_is_refused_naming_the_load(tmp_path: Path, field: str) -> None:
    write_csv(tmp_path / "a.csv", ["name"], [["x"]])
    load = {"file": "a.csv", "entity": "account"}
    del load[field]
    plan = write_plan(tmp_path, [load])
    code, out = migrate(str(plan), "--dry-run")
    assert code == 1
    assert f"load 1: '{field}' is required" in out["fatal"]


def test_verify_lookups_rejects_keys_neither_the_plan_nor_crm_holds(crm: MockCrm, tmp_path: Path) -> None:
    from crmload import CrmClient

    with CrmClient(crm.url2011) as client:  # an account loaded before, by another run
        client.create("account", {"name": "old"}, id=key_id("account", "A8"))
    write_csv(tmp_path / "accounts.csv", ["account_code", "name"], [["A1", "one"]])
    rows = [["C1", "A1", "x"], ["C2", "A9", "y"], ["C3", "A8", "z"]]
    write_csv(tmp_path / "contacts.csv", ["contact_code", "account_code", "lastname"], rows)
    (tmp_path / "c.map.toml").write_text(
        '[columns]\nparentcustomerid = { lookup = "account", key = "account_code" }\n'
    )
    plan = write_plan(
        tmp_path,
        [
            {"file": "accounts.csv", "entity": "account", "key": "account_code"},
            {"file": "contacts.csv", "entity": "contact", "key": "contact_code", "map": "c.map.toml"},
        ],
    )
    code, out = migrate(str(plan), "--url", crm.url2011, "--verify-lookups")
    assert code == 3
    con = out["loads"][1]
    assert (con["done"], con["rejected"]) == (2, 1)
    (reject,) = read_rows(tmp_path / "contacts.rejects.csv")
    assert reject["contact_code"] == "C2"
    assert reject["crmload_phase"] == "parent"
    assert (
        reject["crmload_error"]
        == "lookup parentcustomerid: no row of the plan and no account in CRM has key 'A9'"
    )
    # One pk-In read asked about both keys no row defines; nothing was sent for C2.
    assert crm.stats()["items_by_op"]["Create"] == 1 + 1 + 2


def test_contacts_with_managers_a_custom_self_reference_sorted_parent_first(
    crm_factory: Callable[..., MockCrm], tmp_path: Path
) -> None:
    # CRM 4.0's contact has no manager lookup: an organisation adds one (new_managerid); the mock knows it.
    extra = tmp_path / "meta.toml"
    extra.write_text('[contact.attributes]\nnew_managerid = "Lookup"\n')
    crm = crm_factory(metadata=str(extra))
    write_csv(tmp_path / "accounts.csv", ["account_code", "name"], [["A1", "one"]])
    staff = [
        ["C3", "A1", "", "boss"],
        ["C5", "A1", "C4", "intern"],
        ["C4", "A1", "C3", "lead"],
        ["C6", "A1", "C3", "x"],
    ]
    write_csv(
        tmp_path / "contacts.csv",
        ["contact_code", "account_code", "new_managerid:key(contact)", "lastname"],
        staff,
    )
    (tmp_path / "c.map.toml").write_text(
        '[columns]\nparentcustomerid = { lookup = "account", key = "account_code" }\n'
    )
    plan = write_plan(
        tmp_path,
        [
            {"file": "contacts.csv", "entity": "contact", "key": "contact_code", "map": "c.map.toml"},
            {"file": "accounts.csv", "entity": "account", "key": "account_code"},
        ],
    )
    code, out = migrate(str(plan), "--url", crm.url2011)
    assert code == 0, out
    assert out["loads"][0]["passes"] == 3  # boss, then lead and x, then intern
    assert crm.stats()["items_by_op"].get("Update", 0) == 0
    contacts = by_id(crm, "contact")
    for c_code, _a, manager, _ln in staff:
        rec = contacts[str(key_id("contact", c_code))]
        assert ref(rec, "new_managerid") == (str(key_id("contact", manager)) if manager else None)
        assert ref(rec, "parentcustomerid") == str(key_id("account", "A1"))

"""ExecuteMultiple on the mock's Organization service: Microsoft's ContinueOnError/ReturnResponses table,
MaxBatchSize, nesting, per-item faults and counts, upsert by alternate key, referential integrity."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from crmload.mock import FaultPlan, MockCrm
from tests.mock import helpers as h07
from tests.mock.org_helpers import (
    NS,
    batch_items,
    create_req,
    envelope,
    execute,
    execute_multiple,
    kv,
    post,
    ref,
    request,
    result,
    string,
    upsert_req,
)

NOT_FOUND = -2147220969
MISSING = "0badf00d-0000-0000-0000-000000000000"


def _six_with_faults_at_3_and_5() -> list[str]:
    items = []
    for n in range(1, 7):
        attrs = kv("lastname", string(f"c{n}"))
        if n in (3, 5):  # a lookup to an account that does not exist: ObjectDoesNotExist for that item
            attrs += kv("parentcustomerid", ref("account", MISSING))
        items.append(create_req("contact", attrs, element="l:OrganizationRequest"))
    return items


@pytest.mark.parametrize(
    ("continue_on_error", "return_responses", "expected", "stored"),
    [
        (True, True, [(0, None), (1, None), (2, NOT_FOUND), (3, None), (4, NOT_FOUND), (5, None)], 4),
        (False, True, [(0, None), (1, None), (2, NOT_FOUND)], 2),
        (True, False, [(2, NOT_FOUND), (4, NOT_FOUND)], 4),
        (False, False, [(2, NOT_FOUND)], 2),
    ],
)
def test_continue_on_error_return_responses_table(
    crm: MockCrm,
    continue_on_error: bool,
    return_responses: bool,
    expected: list[tuple[int, int | None]],
    stored: int,
) -> None:
    body = execute_multiple(
        _six_with_faults_at_3_and_5(), continue_on_error=continue_on_error, return_responses=return_responses
    )
    reply = post(crm, "Execute", envelope(body))
    assert reply.status == 200
    items = batch_items(reply)
    assert [(i, code) for i, code, _ in items] == expected
    assert result(reply, "IsFaulted").text == "true"
    assert len(crm.records("contact")) == stored
    created = {c["contactid"] for c in crm.records("contact")}
    for _, code, response in items:
        if code is None:
            assert response is not None
            new_id = response.findtext("a:Results/a:KeyValuePairOfstringanyType/b:value", namespaces=NS)
            assert new_id in created
    stats = crm.stats()
    assert stats["batch_sizes"] == {"6": 1}
    assert stats["requests_by_dialect"]["2011"] == {"Execute:ExecuteMultiple": 1}
    assert stats["items_by_op"] == {"Create": stored + (2 if continue_on_error else 1)}
    assert stats["item_faults_by_code"] == {"0x80040217": 2 if continue_on_error else 1}
    fault_msg = reply.find(".//l:ExecuteMultipleResponseItem/l:Fault/a:Message").text
    assert fault_msg == f"account With Id = {MISSING} Does Not Exist"


def test_max_batch_size_faults_before_anything_runs(crm_factory) -> None:  # type: ignore[no-untyped-def]
    crm = crm_factory(max_batch_size=3)
    items = [
        create_req("account", kv("name", string(f"a{n}")), element="l:OrganizationRequest") for n in range(4)
    ]
    reply = post(
        crm, "Execute", envelope(execute_multiple(items, continue_on_error=True, return_responses=True))
    )
    assert reply.status == 500
    assert crm.records("account") == []
    detail = reply.find(".//a:OrganizationServiceFault/a:ErrorDetails/a:KeyValuePairOfstringanyType")
    assert detail.findtext("b:key", namespaces=NS) == "MaxBatchSize"
    value = detail.find("b:value", NS)
    assert (value.get(f"{{{NS['i']}}}type").split(":")[1], value.text) == ("int", "3")
    ok = post(
        crm, "Execute", envelope(execute_multiple(items[:3], continue_on_error=True, return_responses=True))
    )
    assert len(batch_items(ok)) == 3
    assert len(crm.records("account")) == 3
    assert crm.stats()["batch_sizes"] == {"3": 1}


def test_nested_execute_multiple_faults_its_item(crm: MockCrm) -> None:
    inner = execute_multiple([], continue_on_error=True, return_responses=True)
    nested = inner[inner.index("<request ") : inner.index("</Execute>")]
    nested = nested.replace("<request ", "<l:OrganizationRequest ").replace(
        "</request>", "</l:OrganizationRequest>"
    )
    items = [create_req("account", kv("name", string("before")), element="l:OrganizationRequest"), nested]
    items.append(create_req("account", kv("name", string("after")), element="l:OrganizationRequest"))
    reply = post(
        crm, "Execute", envelope(execute_multiple(items, continue_on_error=True, return_responses=True))
    )
    got = batch_items(reply)
    assert [(i, code) for i, code, _ in got] == [(0, None), (1, -2147220989), (2, None)]
    assert sorted(a["name"] for a in crm.records("account")) == ["after", "before"]


def test_batch_items_of_every_kind(crm: MockCrm) -> None:
    rid = str(uuid.uuid4())
    target = ref("account", rid)
    cols = '<b:value i:type="a:ColumnSet"><a:AllColumns>true</a:AllColumns></b:value>'
    items = [
        create_req("account", kv("name", string("One")), rid, element="l:OrganizationRequest"),
        request(
            "Retrieve", "Retrieve", kv("Target", target) + kv("ColumnSet", cols), "l:OrganizationRequest"
        ),
        request("Delete", "Delete", kv("Target", target), "l:OrganizationRequest"),
        request("Delete", "Delete", kv("Target", target), "l:OrganizationRequest"),
    ]
    reply = post(
        crm, "Execute", envelope(execute_multiple(items, continue_on_error=True, return_responses=True))
    )
    got = batch_items(reply)
    assert [(i, code) for i, code, _ in got] == [(0, None), (1, None), (2, None), (3, NOT_FOUND)]
    types = [r.get(f"{{{NS['i']}}}type") if r is not None else None for _, _, r in got]
    assert types == ["a:CreateResponse", "a:RetrieveResponse", "a:DeleteResponse", None]
    assert crm.stats()["items_by_op"] == {"Create": 1, "Retrieve": 1, "Delete": 2}


@pytest.fixture
def keyed(crm_factory, tmp_path: Path) -> MockCrm:  # type: ignore[no-untyped-def]
    meta = tmp_path / "keys.json"
    meta.write_text(json.dumps({"account": {"keys": {"accountnumber": ["accountnumber"]}}}))
    return crm_factory(metadata=meta)


def test_upsert_by_alternate_key_creates_then_updates(keyed: MockCrm) -> None:
    first = post(
        keyed,
        "Execute",
        envelope(execute(upsert_req("account", kv("name", string("Old")), {"accountnumber": "A-1"}))),
    )
    assert first.status == 200, first.body
    assert result(first, "RecordCreated").text == "true"
    rid = result(first, "Target").findtext("a:Id", namespaces=NS)
    again = post(
        keyed,
        "Execute",
        envelope(execute(upsert_req("account", kv("name", string("New")), {"accountnumber": "a-1"}))),
    )
    assert result(again, "RecordCreated").text == "false"
    assert result(again, "Target").findtext("a:Id", namespaces=NS) == rid
    [rec] = keyed.records("account")
    assert (rec["accountid"], rec["accountnumber"], rec["name"]) == (rid, "A-1", "New")
    assert keyed.stats()["items_by_op"] == {"Upsert": 2}


def test_lookup_by_key_attributes_and_key_uniqueness(keyed: MockCrm) -> None:
    made = post(
        keyed, "Execute", envelope(execute(create_req("account", kv("accountnumber", string("P-1")))))
    )
    parent = result(made, "id").text
    child = kv("lastname", string("Kid")) + kv(
        "parentcustomerid", ref("account", keys={"accountnumber": "P-1"})
    )
    assert post(keyed, "Execute", envelope(execute(create_req("contact", child)))).status == 200
    assert keyed.records("contact")[0]["parentcustomerid"] == {"type": "account", "id": parent}
    orphan = kv("lastname", string("Orphan")) + kv(
        "parentcustomerid", ref("account", keys={"accountnumber": "NOPE"})
    )
    missing = post(keyed, "Execute", envelope(execute(create_req("contact", orphan))))
    assert missing.error_code() == NOT_FOUND
    assert b"A record with the specified key values does not exist in account entity" in missing.body
    undeclared = kv("lastname", string("X")) + kv("parentcustomerid", ref("account", keys={"name": "P"}))
    assert (
        post(keyed, "Execute", envelope(execute(create_req("contact", undeclared)))).error_code()
        == -2147220989
    )
    dup = post(keyed, "Execute", envelope(execute(create_req("account", kv("accountnumber", string("p-1"))))))
    assert dup.error_code() == -2147220937
    assert len(keyed.records("account")) == 1


def test_referential_integrity_on_both_endpoints(crm: MockCrm, crm_factory) -> None:  # type: ignore[no-untyped-def]
    dangling = kv("lastname", string("X")) + kv("parentcustomerid", ref("account", MISSING))
    reply = post(crm, "Execute", envelope(execute(create_req("contact", dangling))))
    assert reply.error_code() == NOT_FOUND
    assert reply.find(".//faultstring").text == f"account With Id = {MISSING} Does Not Exist"
    props = h07.prop("StringProperty", "lastname", "Y") + h07.prop(
        "CustomerProperty", "parentcustomerid", MISSING, ' type="account"'
    )
    conn = h07.connect(crm)
    try:
        old = h07.post(
            conn,
            "Create",
            h07.envelope(f'<Create xmlns="{h07.WS}">{h07.dyn_entity("contact", props)}</Create>'),
        )
    finally:
        conn.close()
    assert (old.status, old.fault_code()) == (500, "0x80040217")
    assert f"account With Id = {MISSING} Does Not Exist".encode() in old.body
    assert crm.records("contact") == []
    # Off for a rehearsal that loads children before parents.
    lax = crm_factory(integrity=False)
    assert post(lax, "Execute", envelope(execute(create_req("contact", dangling)))).status == 200
    assert len(lax.records("contact")) == 1


def test_exec_ms_per_record_sleeps_per_item(crm_factory) -> None:  # type: ignore[no-untyped-def]
    slept: list[float] = []
    crm = crm_factory(faults=FaultPlan(exec_ms_per_record=2.0), sleep=slept.append)
    items = [
        create_req("account", kv("name", string(f"a{n}")), element="l:OrganizationRequest") for n in range(50)
    ]
    post(crm, "Execute", envelope(execute_multiple(items, continue_on_error=True, return_responses=False)))
    post(crm, "Execute", envelope(execute(create_req("account", kv("name", string("one"))))))
    assert slept == [pytest.approx(0.1), pytest.approx(0.002)]

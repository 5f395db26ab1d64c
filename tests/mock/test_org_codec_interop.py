"""The client's Organization-service codec (``Codec2011``) and the mock, written apart and sharing only the
namespace constants, agree on the wire: every value type round-trips, batches answer one result per request,
and the mock's faults come back as the codec's typed errors."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crmload.batch import CreateRequest, UpsertRequest
from crmload.errors import BatchTooLargeError, CrmLoadError
from crmload.mock import MockCrm
from crmload.soap.codec2011 import Codec2011
from crmload.types import AltKey, Lookup, Money, MultiPicklist, Picklist
from tests.mock.org_helpers import Reply, post


@pytest.fixture
def org(crm_factory: Any, tmp_path: Path) -> MockCrm:
    meta = tmp_path / "meta.json"
    extra = {
        "account": {"attributes": {"new_colors": "MultiPicklist"}, "keys": {"number": ["accountnumber"]}}
    }
    meta.write_text(json.dumps(extra))
    server: MockCrm = crm_factory(metadata=meta)
    return server


def _send(crm: MockCrm, op: str, body: bytes) -> Reply:
    return post(crm, Codec2011.soap_action(op).rsplit("/", 1)[1], body)


def test_every_value_type_round_trips(org: MockCrm) -> None:
    codec = Codec2011()
    parent = codec.parse_create(
        _send(org, "Create", codec.build_create("account", {"accountnumber": "P-1"})).body
    )
    attrs: dict[str, object] = {
        "name": "Fabrikam & <Sons> \u00e9",
        "numberofemployees": 42,
        "address1_latitude": 47.25,
        "exchangerate": Decimal("1.5"),
        "creditonhold": True,
        "lastusedincampaign": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "industrycode": Picklist(7),
        "revenue": Money(Decimal("1500.25")),
        "parentaccountid": Lookup("account", parent),
        "new_colors": MultiPicklist([1, 3]),
        "description": None,
    }
    rid = codec.parse_create(_send(org, "Create", codec.build_create("account", attrs)).body)
    got = codec.parse_retrieve(_send(org, "Retrieve", codec.build_retrieve("account", rid)).body)
    assert got["name"] == attrs["name"]
    assert got["numberofemployees"] == 42
    assert got["address1_latitude"] == 47.25
    assert got["exchangerate"] == Decimal("1.5")
    assert got["creditonhold"] is True
    assert got["lastusedincampaign"] == attrs["lastusedincampaign"]
    assert got["industrycode"] == Picklist(7)
    assert got["revenue"] == Money(Decimal("1500.25"))
    assert got["parentaccountid"] == Lookup("account", parent)
    assert got["new_colors"] == MultiPicklist([1, 3])
    assert "description" not in got  # CRM does not return null attributes
    # An alternate-key lookup resolves to the same parent.
    child = codec.build_create(
        "account", {"name": "Child", "parentaccountid": AltKey("account", {"accountnumber": "P-1"})}
    )
    child_id = codec.parse_create(_send(org, "Create", child).body)
    back = codec.parse_retrieve(_send(org, "Retrieve", codec.build_retrieve("account", child_id)).body)
    assert back["parentaccountid"] == Lookup("account", parent)


def test_batch_results_and_typed_item_faults(org: MockCrm) -> None:
    codec = Codec2011()
    keyed = uuid.uuid4()
    requests = [
        CreateRequest("account", {"name": "A"}, keyed),
        CreateRequest("account", {"name": "B", "parentaccountid": Lookup("account", uuid.uuid4())}),
        CreateRequest("account", {"name": "dup"}, keyed),
        UpsertRequest("account", {"name": "U"}, keys={"accountnumber": "K-1"}),
    ]
    body = codec.build_execute_multiple(requests)
    results = codec.parse_execute_multiple(_send(org, "execute_multiple", body).body, requests)
    assert len(results) == 4
    assert results[0] == keyed
    assert isinstance(results[1], CrmLoadError)
    assert "Does Not Exist" in str(results[1])
    assert isinstance(results[2], CrmLoadError)
    assert (type(results[1]).__name__, type(results[2]).__name__) == ("RecordNotFound", "DuplicateRecord")
    names = sorted(a["name"] for a in org.records("account"))
    assert names == ["A", "U"]
    assert org.stats()["batch_sizes"] == {"4": 1}


def test_max_batch_size_fault_reaches_the_codec(crm_factory: Any) -> None:
    crm = crm_factory(max_batch_size=2)
    codec = Codec2011()
    requests = [CreateRequest("account", {"name": f"n{i}"}) for i in range(3)]
    reply = _send(crm, "execute_multiple", codec.build_execute_multiple(requests))
    with pytest.raises(BatchTooLargeError) as info:
        codec.parse_execute_multiple(reply.body, requests)
    assert info.value.max_batch_size == 2
    assert crm.records("account") == []


def test_same_record_through_both_endpoints_is_stored_the_same(org: MockCrm) -> None:
    """What acceptance 1 compares: a record loaded through 2007 and through 2011 is equal field by field
    (CRM keeps date-times in UTC, so an offset sent through 2007 and ``Z`` sent through 2011 meet)."""
    from crmload.soap.codec2007 import Codec2007
    from tests.mock.helpers import connect
    from tests.mock.helpers import post as post2007

    parent = uuid.uuid4()
    Codec2011().parse_create(
        _send(org, "Create", Codec2011().build_create("account", {"name": "P"}, parent)).body
    )
    cest = dt.timezone(dt.timedelta(hours=2))
    attrs: dict[str, object] = {
        "name": "Same \u00e9 & <co>",
        "numberofemployees": 7,
        "exchangerate": Decimal("1.25"),
        "creditonhold": False,
        "lastusedincampaign": dt.datetime(2024, 6, 1, 12, 30, tzinfo=cest),
        "industrycode": Picklist(3),
        "revenue": Money(Decimal("99.5")),
        "parentaccountid": Lookup("account", parent),
    }
    ids = (uuid.uuid4(), uuid.uuid4())
    old = Codec2007(org="Contoso")
    conn = connect(org)
    try:
        reply = post2007(
            conn, "Create", old.build_create("account", attrs, ids[0]), action=old.soap_action("Create")
        )
    finally:
        conn.close()
    assert reply.status == 200, reply.body
    _send(org, "Create", Codec2011().build_create("account", attrs, ids[1]))
    records = {r["accountid"]: r for r in org.records("account")}
    via_2007, via_2011 = (dict(records[str(i)]) for i in ids)
    for rec in (via_2007, via_2011):
        rec.pop("accountid")
    assert via_2007 == via_2011
    assert via_2011["lastusedincampaign"] == "2024-06-01T10:30:00Z"

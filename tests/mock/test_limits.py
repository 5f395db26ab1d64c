"""The mock refuses values over their attribute's limits, as CRM does (issue 16 item 16)."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator

import pytest

from crmload.mock import MockCrm
from tests.mock.helpers import WS, Reply, connect, dyn_entity, envelope, post, prop


@pytest.fixture
def conn(crm: MockCrm) -> Iterator[http.client.HTTPConnection]:
    c = connect(crm)
    yield c
    c.close()


def _create(conn: http.client.HTTPConnection, entity: str, props: str) -> Reply:
    return post(conn, "Create", envelope(f'<Create xmlns="{WS}">{dyn_entity(entity, props)}</Create>'))


def _description(reply: Reply) -> str:
    el = reply.xml.find(".//detail/error/description")
    assert el is not None, reply.body
    return el.text or ""


@pytest.mark.parametrize(
    ("kind", "name", "value", "code", "says"),
    [
        (
            "StringProperty",
            "name",
            "n" * 200_000,
            "0x80044331",
            "The length of the 'name' attribute of the 'account' entity exceeded the maximum allowed length"
            " of '160'.",
        ),
        ("StringProperty", "accountnumber", "A" * 21, "0x80044331", "maximum allowed length of '20'"),
        ("StringProperty", "telephone1", "\U0001d11e" * 26, "0x80044331", "'telephone1'"),  # 52 UTF-16 units
        ("CrmDateTimeProperty", "lastusedincampaign", "0001-01-01T00:00:00", "0x80040203", "valid range"),
        ("CrmDateTimeProperty", "lastusedincampaign", "1753-01-01T00:00:00+01:00", "0x80040203", "1753"),
        ("CrmDateTimeProperty", "lastusedincampaign", "yesterday", "0x80040203", "not a valid date"),
        ("CrmMoneyProperty", "creditlimit", "1" * 29, "0x80040203", "'creditlimit' on record of type"),
        ("CrmMoneyProperty", "creditlimit", "1.00001", "0x80040203", "more than 4 decimal places"),
        ("CrmDecimalProperty", "exchangerate", "1.00000000001", "0x80040203", "more than 10 decimal places"),
        ("CrmNumberProperty", "numberofemployees", str(2**31), "0x80040203", "valid range"),
        ("CrmFloatProperty", "address1_latitude", "1e400", "0x80040203", "not a valid CrmFloat"),
    ],
)
def test_value_over_its_limit_is_refused(  # noqa: PLR0917 - one parameter per table column
    conn: http.client.HTTPConnection, crm: MockCrm, kind: str, name: str, value: str, code: str, says: str
) -> None:
    reply = _create(conn, "account", prop("StringProperty", "name", "ok") + prop(kind, name, value))
    assert (reply.status, reply.fault_code()) == (500, code)
    assert says in _description(reply)
    assert f"'{name}'" in _description(reply)
    assert crm.records("account") == []


def test_values_at_the_limit_are_stored(conn: http.client.HTTPConnection, crm: MockCrm) -> None:
    props = (
        prop("StringProperty", "name", "n" * 160)
        + prop("StringProperty", "telephone1", "\U0001d11e" * 25)
        + prop("StringProperty", "description", "d" * 2000)
        + prop("CrmDateTimeProperty", "lastusedincampaign", "1753-01-01T00:00:00Z")
        + prop("CrmDateTimeProperty", "modifiedon", "9999-12-31T23:59:59")
        + prop("CrmMoneyProperty", "creditlimit", "-922337203685476.1234")
        + prop("CrmNumberProperty", "numberofemployees", str(2**31 - 1))
    )
    reply = _create(conn, "account", props)
    assert reply.status == 200, reply.body
    [rec] = crm.records("account")
    assert (len(rec["name"]), rec["creditlimit"], rec["lastusedincampaign"]) == (
        160,
        "-922337203685476.1234",
        "1753-01-01T00:00:00Z",
    )


def test_typed_entity_and_update_are_checked_too(conn: http.client.HTTPConnection, crm: MockCrm) -> None:
    rid = str(uuid.uuid4())
    typed = (
        f'<Create xmlns="{WS}"><entity xsi:type="account"><accountid>{rid}</accountid><name>{{}}</name>'
        "</entity></Create>"
    )
    assert post(conn, "Create", envelope(typed.format("x" * 161))).fault_code() == "0x80044331"
    assert post(conn, "Create", envelope(typed.format("ok"))).status == 200
    update = (
        f'<Update xmlns="{WS}"><entity xsi:type="account"><accountid>{rid}</accountid>'
        "<creditlimit>99999999999999999999</creditlimit></entity></Update>"
    )
    reply = post(conn, "Update", envelope(update))
    assert reply.fault_code() == "0x80040203"
    assert crm.records("account") == [{"accountid": rid, "name": "ok"}]


def test_user_metadata_limits_apply(crm_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    extra = tmp_path / "extra.json"
    extra.write_text('{"account": {"attributes": {"name": {"max_length": 5}}}}', encoding="utf-8")
    server = crm_factory(metadata=extra)
    c = connect(server)
    try:
        assert _create(c, "account", prop("StringProperty", "name", "x" * 5)).status == 200
        reply = _create(c, "account", prop("StringProperty", "name", "x" * 6))
    finally:
        c.close()
    assert "maximum allowed length of '5'" in _description(reply)
    assert len(server.records("account")) == 1

"""Every real CRM 4.0 request sample in ``shared/reference/crm-wsdl/samples`` is accepted and answered as
CRM would.

The samples are posted byte for byte with the headers of their ``.http.txt`` files. Records they refer to are
created first with raw Create envelopes, so each sample gets the success answer; the answer's shape is parsed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from crmload.mock import MockCrm
from tests.mock.helpers import WS, WS06, XSI, Reply, connect, dyn_entity, envelope, post, prop

CONTACT = "a1b2c3d4-0000-0000-0000-000000000002"
SAMPLE_NAMES = [
    "crm2007_create_dynamic.zeep",
    "crm2007_create_typed-account.phpmscrm-nusoap",
    "crm2007_delete.zeep",
    "crm2007_delete_lead.phpmscrm-nusoap",
    "crm2007_execute_create_dynamic.zeep",
    "crm2007_execute_retrieve_dynamic.zeep",
    "crm2007_execute_update_dynamic.zeep",
    "crm2007_execute_whoami.phpmscrm-nusoap",
    "crm2007_retrieve.zeep",
    "crm2007_retrieve_account.phpmscrm-nusoap",
    "crm2007_retrievemultiple_queryexpression.phpmscrm-nusoap",
    "crm2007_retrievemultiple_queryexpression.zeep",
    "crm2007_update_typed-account.phpmscrm-nusoap",
]


@pytest.fixture(scope="module")
def sample_crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockCrm]:
    """A server whose contact has the samples' custom attributes (added through a user metadata file)."""
    extra = tmp_path_factory.mktemp("meta") / "extra.json"
    custom = {
        "new_discountrate": {"type": "CrmDecimal", "precision": 4},
        "new_score": "CrmFloat",
        "new_regionid": "Lookup",
    }
    region = {"primary_key": "new_regionid", "attributes": {"new_name": "String"}}
    extra.write_text(json.dumps({"contact": {"attributes": custom}, "new_region": region}))
    with MockCrm(org="Contoso", metadata=extra) as server:
        yield server


def _send_sample(crm: MockCrm, directory: Path, name: str) -> Reply:
    head = (directory / f"{name}.request.http.txt").read_text().splitlines()
    _, path, _ = head[0].split(" ", 2)
    headers = dict(line.split(":", 1) for line in head[1:] if ":" in line)
    headers = {
        k.strip(): v.strip()
        for k, v in headers.items()
        if k.strip().lower() in ("content-type", "soapaction")
    }
    conn = connect(crm)
    try:
        body = (directory / f"{name}.request.xml").read_bytes()
        conn.request("POST", path, body, headers)
        resp = conn.getresponse()
        return Reply(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()


def _seed(crm: MockCrm) -> None:
    conn = connect(crm)
    try:
        for entity, key, props in [
            (
                "contact",
                CONTACT,
                prop("StringProperty", "fullname", "Diane Morgan")
                + prop("StringProperty", "emailaddress1", "diane@example.com"),
            ),
            ("lead", "B8B993AE-8078-DF11-AD14-0003FF1136C8", prop("StringProperty", "subject", "x")),
            (
                "account",
                "A5BBF8F2-F9B1-DB11-9E18-001372A314AA",
                prop("StringProperty", "name", "Fabrikam") + prop("StringProperty", "telephone1", "555"),
            ),
            (
                "account",
                "B6B993AE-8078-DF11-AD14-0003FF1136C8",
                prop("StringProperty", "name", "Contoso Ltd"),
            ),
            ("account", str(uuid.uuid4()), prop("StringProperty", "name", "Contoso East")),
            # The samples' lookup targets: CRM (and the mock) fault a lookup to a record that does not exist.
            ("account", "a1b2c3d4-0000-0000-0000-000000000001", prop("StringProperty", "name", "Parent")),
            (
                "systemuser",
                "a1b2c3d4-0000-0000-0000-000000000003",
                prop("StringProperty", "lastname", "Owner"),
            ),
            (
                "new_region",
                "a1b2c3d4-0000-0000-0000-000000000001",
                prop("StringProperty", "new_name", "EMEA"),
            ),
        ]:
            allprops = prop("KeyProperty", f"{entity}id", key) + props
            r = post(
                conn, "Create", envelope(f'<Create xmlns="{WS}">{dyn_entity(entity, allprops)}</Create>')
            )
            assert r.status == 200, r.body
    finally:
        conn.close()


def _xsi_type(el: etree._Element) -> tuple[str | None, str]:
    prefix, _, local = (el.get(f"{{{XSI}}}type") or "").rpartition(":")
    return el.nsmap.get(prefix or None), local


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_is_answered(sample_crm: MockCrm, shared_reference: Path, name: str) -> None:
    directory = shared_reference / "crm-wsdl" / "samples"
    sample_crm.reset()
    _seed(sample_crm)
    reply = _send_sample(sample_crm, directory, name)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/xml")
    _CHECKS[name.split(".", maxsplit=1)[0]](sample_crm, reply)


def _check_create_dynamic(crm: MockCrm, r: Reply) -> None:
    rid = r.find("s:Body/w:CreateResponse/w:CreateResult").text
    [rec] = [c for c in crm.records("contact") if c["contactid"] == rid]
    assert rec["lastname"] == "Morgan & <Sons>"
    assert rec["numberofchildren"] == 3


def _check_create_typed(crm: MockCrm, r: Reply) -> None:
    rid = r.find("s:Body/w:CreateResponse/w:CreateResult").text
    [rec] = [a for a in crm.records("account") if a["accountid"] == rid]
    assert rec["accountcategorycode"] == 1
    assert rec["parentaccountid"] == {"type": "account", "id": "b6b993ae-8078-df11-ad14-0003ff1136c8"}


def _check_delete(crm: MockCrm, r: Reply) -> None:
    assert r.find("s:Body/w:DeleteResponse") is not None
    assert (
        crm.stats()["records_by_entity"].get("contact", 0) + crm.stats()["records_by_entity"].get("lead", 0)
        == 1
    )


def _check_execute_create(crm: MockCrm, r: Reply) -> None:
    resp = r.find("s:Body/w:ExecuteResponse/w:Response")
    assert _xsi_type(resp) == (WS, "CreateResponse")
    rid = resp.findtext(f"{{{WS}}}id")
    [rec] = [c for c in crm.records("contact") if c["contactid"] == rid]
    assert rec["creditlimit"] == "1500.25"
    assert rec["new_discountrate"] == "0.125"
    assert rec["new_score"] == 98.5
    assert rec["donotemail"] is True
    assert rec["birthdate"] == "1980-05-17T00:00:00"
    assert rec["gendercode"] == 2
    assert rec["parentcustomerid"] == {"type": "account", "id": "a1b2c3d4-0000-0000-0000-000000000001"}
    assert rec["ownerid"] == {"type": "systemuser", "id": "a1b2c3d4-0000-0000-0000-000000000003"}


def _check_execute_retrieve(crm: MockCrm, r: Reply) -> None:
    resp = r.find("s:Body/w:ExecuteResponse/w:Response")
    assert _xsi_type(resp) == (WS, "RetrieveResponse")
    ent = resp.find(f"{{{WS06}}}BusinessEntity")
    assert _xsi_type(ent) == (WS06, "DynamicEntity")
    assert ent.get("Name") == "contact"
    props = {
        p.get("Name"): (_xsi_type(p), p.findtext(f"{{{WS06}}}Value")) for p in ent.iter(f"{{{WS06}}}Property")
    }
    assert props["contactid"] == ((WS06, "KeyProperty"), CONTACT)
    assert props["fullname"] == ((WS06, "StringProperty"), "Diane Morgan")


def _check_execute_update(crm: MockCrm, r: Reply) -> None:
    assert _xsi_type(r.find("s:Body/w:ExecuteResponse/w:Response")) == (WS, "UpdateResponse")
    [rec] = [c for c in crm.records("contact") if c["contactid"] == CONTACT]
    assert rec["jobtitle"] == "Buyer"
    assert rec["statuscode"] == 1


def _check_whoami(crm: MockCrm, r: Reply) -> None:
    resp = r.find("s:Body/w:ExecuteResponse/w:Response")
    assert _xsi_type(resp) == (WS, "WhoAmIResponse")
    for tag in ("UserId", "BusinessUnitId", "OrganizationId"):
        uuid.UUID(resp.findtext(f"{{{WS}}}{tag}"))


def _check_retrieve(crm: MockCrm, r: Reply) -> None:
    result = r.find("s:Body/w:RetrieveResponse/w:RetrieveResult")
    entity = _xsi_type(result)
    assert entity[0] == WS
    asked = {"contact": {"fullname", "emailaddress1"}, "account": {"name", "telephone1"}}[entity[1]]
    assert {etree.QName(c).localname for c in result} == asked


def _check_retrieve_multiple(crm: MockCrm, r: Reply) -> None:
    result = r.find("s:Body/w:RetrieveMultipleResponse/w:RetrieveMultipleResult")
    assert result.get("MoreRecords") == "false"
    entities = result.findall(f"{{{WS06}}}BusinessEntities/{{{WS06}}}BusinessEntity")
    if result.get("EntityName") == "account":  # name Like 'Contoso%', ordered by name
        assert [e.findtext(f"{{{WS}}}name") for e in entities] == ["Contoso East", "Contoso Ltd"]
    else:
        assert [e.findtext(f"{{{WS}}}contactid") for e in entities] == [CONTACT]
        assert all(_xsi_type(e) == (WS, "contact") for e in entities)


def _check_update_typed(crm: MockCrm, r: Reply) -> None:
    assert r.find("s:Body/w:UpdateResponse") is not None
    [rec] = [a for a in crm.records("account") if a["accountid"] == "b6b993ae-8078-df11-ad14-0003ff1136c8"]
    assert rec["name"] == "Contoso Ltd (renamed)"
    assert rec["emailaddress1"] == "info@contoso.example"


_CHECKS = {
    "crm2007_create_dynamic": _check_create_dynamic,
    "crm2007_create_typed-account": _check_create_typed,
    "crm2007_delete": _check_delete,
    "crm2007_delete_lead": _check_delete,
    "crm2007_execute_create_dynamic": _check_execute_create,
    "crm2007_execute_retrieve_dynamic": _check_execute_retrieve,
    "crm2007_execute_update_dynamic": _check_execute_update,
    "crm2007_execute_whoami": _check_whoami,
    "crm2007_retrieve": _check_retrieve,
    "crm2007_retrieve_account": _check_retrieve,
    "crm2007_retrievemultiple_queryexpression": _check_retrieve_multiple,
    "crm2007_update_typed-account": _check_update_typed,
}


def test_every_sample_file_is_covered(shared_reference: Path) -> None:
    found = {
        p.name[: -len(".request.xml")]
        for p in (shared_reference / "crm-wsdl" / "samples").glob("crm2007_*.request.xml")
    }
    assert found == set(SAMPLE_NAMES)

"""The mock's Organization service endpoint: the real captures answered, faults byte for byte like the real
one, one store shared with the 2007 endpoint, bearer authentication, and WCF's routing rules."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from crmload.mock import MockCrm
from tests.mock import helpers as h07
from tests.mock.org_helpers import (
    NS,
    PATH,
    create_req,
    entity,
    envelope,
    execute,
    kv,
    post,
    ref,
    request,
    result,
    string,
    typed,
)

CONTACT = "a1b2c3d4-0000-0000-0000-000000000002"
ACCOUNT = "a1b2c3d4-0000-0000-0000-000000000001"
SAMPLES = [
    "org-web_execute_create_contact.xrmservicetoolkit",
    "org-web_execute_create_contact.xrmservicetoolkit-crm2015mode",
    "org-web_execute_update_contact.xrmservicetoolkit",
    "org-web_execute_delete_contact.xrmservicetoolkit",
    "org-web_execute_retrieve_contact.xrmservicetoolkit",
    "org-web_execute_retrievemultiple_fetch_contact.xrmservicetoolkit",
    "org-web_execute_retrievemultiple_queryexpression_account.xrmservicetoolkit",
    "org-web_execute_whoami.xrmservicetoolkit",
]


def _seed_2007(crm: MockCrm) -> None:
    """The records the captures name, created through the 2007 endpoint (one store serves both)."""
    conn = h07.connect(crm)
    try:
        for ent, key, props in [
            ("account", ACCOUNT, h07.prop("StringProperty", "name", "Parent Ltd")),
            (
                "contact",
                CONTACT,
                h07.prop("StringProperty", "fullname", "Diane Morgan")
                + h07.prop("StringProperty", "lastname", "Morgan")
                + h07.prop("StringProperty", "emailaddress1", "diane@example.com"),
            ),
        ]:
            allprops = h07.prop("KeyProperty", f"{ent}id", key) + props
            body = h07.envelope(f'<Create xmlns="{h07.WS}">{h07.dyn_entity(ent, allprops)}</Create>')
            assert h07.post(conn, "Create", body).status == 200
    finally:
        conn.close()


def _send_sample(crm: MockCrm, directory: Path, stem: str) -> tuple[int, bytes]:
    base = stem.replace("-crm2015mode", "")
    head = (directory / f"{base}.request.http.txt").read_text().splitlines()
    headers = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in head[1:] if ":" in line)}
    reply = post(
        crm,
        headers["SOAPAction"].rsplit("/", 1)[1],
        (directory / f"{stem}.request.xml").read_bytes(),
        content_type=headers["Content-Type"],
        path="/Contoso" + PATH,  # the captures' on-premises URL carries the org name
    )
    return reply.status, reply.body


@pytest.mark.parametrize("stem", SAMPLES)
def test_real_capture_is_answered(crm: MockCrm, shared_reference: Path, stem: str) -> None:
    _seed_2007(crm)
    status, body = _send_sample(crm, shared_reference / "crm-wsdl" / "samples", stem)
    assert status == 200, body
    from tests.mock.org_helpers import Reply

    reply = Reply(status, {}, body)
    op = stem.split("_")[2]
    contacts = {c["contactid"]: c for c in crm.records("contact")}
    if op == "create":
        new_id = result(reply, "id").text
        rec = contacts[new_id]
        assert rec["lastname"] == "Morgan & <Sons>"
        assert (rec["gendercode"], rec["creditlimit"], rec["numberofchildren"]) == (2, "1500.25", 3)
        assert (rec["exchangerate"], rec["donotemail"], rec["birthdate"]) == (
            "1.5",
            True,
            "1980-05-17T00:00:00",
        )
        assert rec["parentcustomerid"] == {"type": "account", "id": ACCOUNT}
        assert rec["description"] is None
    elif op == "update":
        assert (contacts[CONTACT]["jobtitle"], contacts[CONTACT]["familystatuscode"]) == ("Buyer", 1)
    elif op == "delete":
        assert CONTACT not in contacts
    elif op == "retrieve":
        ent = result(reply, "Entity")
        keys = [k.text for k in ent.findall("a:Attributes/a:KeyValuePairOfstringanyType/b:key", NS)]
        assert keys == ["fullname", "emailaddress1"]
        assert ent.findtext("a:Id", namespaces=NS) == CONTACT
    elif op == "retrievemultiple":
        coll = result(reply, "EntityCollection")
        names = coll.findall("a:Entities/a:Entity/a:LogicalName", NS)
        assert len(names) == 1  # one Morgan contact / one account
        assert coll.findtext("a:MoreRecords", namespaces=NS) == "false"
    else:
        assert uuid.UUID(result(reply, "UserId").text)
        assert uuid.UUID(result(reply, "OrganizationId").text)


def test_fault_is_byte_for_byte_the_real_shape(crm: MockCrm, shared_reference: Path) -> None:
    captured = (
        shared_reference
        / "crm-wsdl"
        / "samples"
        / "org-web_fault_objectdoesnotexist.php-connector-fixture.response.xml"
    ).read_bytes()
    missing = "9e9cc03c-e7cc-e111-bbd7-005056b14b94"
    params = kv(
        "Target",
        ref("contact", missing),
    )
    reply = post(crm, "Execute", envelope(execute(request("Delete", "Delete", params))))
    assert reply.status == 500
    assert reply.headers["content-type"] == "text/xml; charset=utf-8"
    stamp = re.compile(rb"<Timestamp>[0-9T:.\-]+Z</Timestamp>")
    assert stamp.search(reply.body)
    assert stamp.sub(b"", reply.body) == stamp.sub(b"", captured)


def test_one_store_for_both_endpoints(crm: MockCrm) -> None:
    """A record written through one endpoint reads back with the same values through the other."""
    _seed_2007(crm)
    attrs = (
        kv("name", string("Fabrikam & <Co>"))
        + kv("numberofemployees", typed("int", "42"))
        + kv("exchangerate", typed("decimal", "1.25"))
        + kv("address1_latitude", typed("double", "47.5"))
        + kv("creditonhold", typed("boolean", "true"))
        + kv("lastusedincampaign", typed("dateTime", "2024-01-02T03:04:05Z"))
        + kv("industrycode", '<b:value i:type="a:OptionSetValue"><a:Value>7</a:Value></b:value>')
        + kv("revenue", '<b:value i:type="a:Money"><a:Value>1500.25</a:Value></b:value>')
        + kv("parentaccountid", ref("account", ACCOUNT))
        + kv("description", '<b:value i:nil="true"/>')
    )
    reply = post(crm, "Execute", envelope(execute(create_req("account", attrs))))
    new_id = result(reply, "id").text
    via_2011 = next(a for a in crm.records("account") if a["accountid"] == new_id)
    # Read it back through the 2007 endpoint, then write the same values through 2007 and compare stores.
    conn = h07.connect(crm)
    try:
        got = h07.post(
            conn,
            "Retrieve",
            h07.envelope(
                f'<Retrieve xmlns="{h07.WS}"><entityName>account</entityName><id>{new_id}</id>'
                f'<columnSet xmlns:q1="{h07.QRY}" xsi:type="q1:AllColumns" /></Retrieve>'
            ),
        )
    finally:
        conn.close()
    assert got.status == 200
    assert got.find("s:Body/w:RetrieveResponse/w:RetrieveResult/w:name").text == "Fabrikam & <Co>"
    assert via_2011["revenue"] == "1500.25"
    assert via_2011["industrycode"] == 7
    assert via_2011["parentaccountid"] == {"type": "account", "id": ACCOUNT}
    # ...and the 2007-created contact is retrievable through 2011 with its values.
    params = kv("Target", ref("contact", CONTACT)) + kv(
        "ColumnSet", '<b:value i:type="a:ColumnSet"><a:AllColumns>true</a:AllColumns><a:Columns/></b:value>'
    )
    back = post(crm, "Execute", envelope(execute(request("Retrieve", "Retrieve", params))))
    values = {
        p.findtext("b:key", namespaces=NS): p.findtext("b:value", namespaces=NS)
        for p in result(back, "Entity").findall("a:Attributes/a:KeyValuePairOfstringanyType", NS)
    }
    assert values == {
        "contactid": CONTACT,
        "fullname": "Diane Morgan",
        "lastname": "Morgan",
        "emailaddress1": "diane@example.com",
    }


def test_direct_operations(crm: MockCrm) -> None:
    svc = "http://schemas.microsoft.com/xrm/2011/Contracts/Services"
    ns_decl = f'xmlns="{svc}" xmlns:i="{NS["i"]}" xmlns:a="{NS["a"]}" xmlns:b="{NS["b"]}"'
    rid = str(uuid.uuid4())
    body = (
        f"<Create {ns_decl}><entity>{entity('account', kv('name', string('Direct')), rid)}</entity></Create>"
    )
    reply = post(crm, "Create", envelope(body))
    assert reply.find("s:Body/v:CreateResponse/v:CreateResult").text == rid
    changed = entity("account", kv("telephone1", string("555")), rid)
    upd = f"<Update {ns_decl}><entity>{changed}</entity></Update>"
    assert post(crm, "Update", envelope(upd)).status == 200
    ret = (
        f"<Retrieve {ns_decl}><entityName>account</entityName><id>{rid}</id><columnSet>"
        "<a:AllColumns>false</a:AllColumns><a:Columns xmlns:c='http://schemas.microsoft.com/2003/10/Serialization/Arrays'>"
        "<c:string>name</c:string><c:string>telephone1</c:string></a:Columns></columnSet></Retrieve>"
    )
    got = post(crm, "Retrieve", envelope(ret))
    pairs = got.findall(
        "s:Body/v:RetrieveResponse/v:RetrieveResult/a:Attributes/a:KeyValuePairOfstringanyType"
    )
    assert [(p.findtext("b:key", namespaces=NS), p.findtext("b:value", namespaces=NS)) for p in pairs] == [
        ("name", "Direct"),
        ("telephone1", "555"),
    ]
    dele = f"<Delete {ns_decl}><entityName>account</entityName><id>{rid}</id></Delete>"
    assert post(crm, "Delete", envelope(dele)).status == 200
    assert crm.records("account") == []
    assert post(crm, "Delete", envelope(dele)).error_code() == -2147220969
    assert crm.stats()["requests_by_dialect"]["2011"] == {
        "Create": 1,
        "Update": 1,
        "Retrieve": 1,
        "Delete": 2,
    }


def test_bearer_tokens(crm_factory) -> None:  # type: ignore[no-untyped-def]
    crm = crm_factory(tokens={"tok-alice": "alice", "tok-bob": "bob"})
    who = envelope(
        execute(
            request("WhoAmI", "WhoAmI", "", prefix="g").replace(
                "<request ", '<request xmlns:g="http://schemas.microsoft.com/crm/2011/Contracts" '
            )
        )
    )
    for token in (None, "wrong", "tok-alice "):
        reply = post(crm, "Execute", who, token=token)
        if token == "tok-alice ":
            assert reply.status == 200  # surrounding whitespace is not part of the token
            continue
        assert reply.status == 401
        assert reply.headers["www-authenticate"].startswith(
            "Bearer authorization_uri=https://login.microsoftonline.com/"
        )
    alice = result(post(crm, "Execute", who, token="tok-alice"), "UserId").text
    bob = result(post(crm, "Execute", who, token="tok-bob"), "UserId").text
    assert alice != bob
    # Each identity's systemuser exists for lookups (ownerid), as the caller's own record does in CRM.
    attrs = kv("name", string("Owned")) + kv("ownerid", ref("systemuser", alice))
    assert (
        post(crm, "Execute", envelope(execute(create_req("account", attrs))), token="tok-bob").status == 200
    )
    assert crm.stats()["faults_by_kind"]["bearer_401"] == 2
    assert crm.stats()["requests_by_user"] == {"alice": 2, "bob": 2}
    # The 2007 endpoint is not behind the bearer gate (it speaks NTLM when users= is set).
    conn = h07.connect(crm)
    try:
        assert (
            h07.post(
                conn,
                "Execute",
                h07.envelope(f'<Execute xmlns="{h07.WS}"><Request xsi:type="WhoAmIRequest" /></Execute>'),
            ).status
            == 200
        )
    finally:
        conn.close()


def test_no_tokens_accepts_any_caller(crm: MockCrm) -> None:
    who = envelope(execute(request("WhoAmI", "WhoAmI", "", prefix="a")))
    assert post(crm, "Execute", who).status == 200
    assert post(crm, "Execute", who, token="anything").status == 200


def test_wcf_routing_rules(crm: MockCrm) -> None:
    who = envelope(execute(request("WhoAmI", "WhoAmI", "")))
    assert post(crm, "Execute", who, content_type="application/soap+xml; charset=utf-8").status == 415
    wrong = post(crm, "Create", who)  # the action names Create, the body is an Execute
    assert wrong.status == 500
    assert b"does not match the action" in wrong.body
    unknown = post(crm, "Frobnicate", who)
    assert unknown.status == 500
    assert b"ContractFilter mismatch" in unknown.body
    assert post(crm, "Execute", who, path="/Other" + PATH).status == 404

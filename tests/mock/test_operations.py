"""Every operation of the 2007 endpoint, both entity forms, queries, paging, Fetch, routing and SOAP 1.2."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator

import pytest
from lxml import etree

from crmload.mock import MockCrm
from tests.mock.helpers import ACTION, QRY, SOAP12, WS, WS06, connect, dyn_entity, envelope, post, prop


@pytest.fixture
def conn(crm: MockCrm) -> Iterator[http.client.HTTPConnection]:
    c = connect(crm)
    yield c
    c.close()


def create(conn: http.client.HTTPConnection, entity: str, props: str) -> str:
    r = post(conn, "Create", envelope(f'<Create xmlns="{WS}">{dyn_entity(entity, props)}</Create>'))
    assert r.status == 200, r.body
    return r.find(".//w:CreateResult").text


def seed_accounts(conn: http.client.HTTPConnection, n: int) -> list[str]:
    return [
        create(
            conn,
            "account",
            prop("StringProperty", "name", f"acc{i:02d}")
            + prop("CrmNumberProperty", "numberofemployees", str(i % 3)),
        )
        for i in range(n)
    ]


def query_expression(
    conditions: str, *, columns: str = '<q:ColumnSet xsi:type="q:AllColumns" />', page: str = ""
) -> str:
    return (
        f'<query xmlns:q="{QRY}" xsi:type="q:QueryExpression"><q:EntityName>account</q:EntityName>{columns}'
        f"<q:Distinct>false</q:Distinct>{page}<q:Criteria><q:FilterOperator>And</q:FilterOperator><q:Conditions>"
        f"{conditions}</q:Conditions></q:Criteria></query>"
    )


def cond(attr: str, op: str, *values: str) -> str:
    vals = "".join(f"<q:Value>{v}</q:Value>" for v in values)
    return (
        f"<q:Condition><q:AttributeName>{attr}</q:AttributeName><q:Operator>{op}</q:Operator>"
        f"<q:Values>{vals}</q:Values></q:Condition>"
    )


def retrieve_multiple(conn: http.client.HTTPConnection, query: str) -> etree._Element:
    r = post(conn, "RetrieveMultiple", envelope(f'<RetrieveMultiple xmlns="{WS}">{query}</RetrieveMultiple>'))
    assert r.status == 200, r.body
    return r.find(".//w:RetrieveMultipleResult")


def names(result: etree._Element) -> list[str]:
    return [e.findtext(f"{{{WS}}}name") for e in result.iter(f"{{{WS06}}}BusinessEntity")]


def test_typed_create_update_retrieve(conn: http.client.HTTPConnection, crm: MockCrm) -> None:
    rid = str(uuid.uuid4())
    body = (
        f'<Create xmlns="{WS}"><entity xsi:type="account"><accountid>{rid}</accountid><name>T</name>'
        "<creditlimit>10.50</creditlimit></entity></Create>"
    )
    assert post(conn, "Create", envelope(body)).find(".//w:CreateResult").text == rid
    body = (
        f'<Update xmlns="{WS}"><entity xsi:type="account"><accountid>{{{rid.upper()}}}</accountid>'
        "<name>U</name></entity></Update>"
    )
    assert post(conn, "Update", envelope(body)).status == 200
    q = f'<columnSet xmlns:q="{QRY}" xsi:type="q:AllColumns" />'
    r = post(
        conn,
        "Retrieve",
        envelope(f'<Retrieve xmlns="{WS}"><entityName>account</entityName><id>{rid}</id>{q}</Retrieve>'),
    )
    result = r.find(".//w:RetrieveResult")
    assert {etree.QName(c).localname: c.text for c in result} == {
        "accountid": rid,
        "name": "U",
        "creditlimit": "10.50",
    }
    assert crm.records("account") == [{"accountid": rid, "name": "U", "creditlimit": "10.50"}]


def test_null_values_are_stored_and_omitted(conn: http.client.HTTPConnection, crm: MockCrm) -> None:
    rid = create(
        conn, "account", prop("StringProperty", "name", "N") + prop("CrmMoneyProperty", "creditlimit", None)
    )
    assert crm.records("account") == [{"accountid": rid, "name": "N", "creditlimit": None}]
    result = retrieve_multiple(conn, query_expression(cond("creditlimit", "Null")))
    assert names(result) == ["N"]
    assert (
        retrieve_multiple(conn, query_expression(cond("creditlimit", "NotNull"))).find(
            f".//{{{WS06}}}BusinessEntity"
        )
        is None
    )


def test_conditions_equal_in_like(conn: http.client.HTTPConnection) -> None:
    seed_accounts(conn, 6)
    assert names(retrieve_multiple(conn, query_expression(cond("name", "Equal", "ACC03")))) == ["acc03"]
    # Without orders the mock answers in primary-key order (as CRM does), not insertion order.
    assert sorted(
        names(retrieve_multiple(conn, query_expression(cond("numberofemployees", "In", "0", "2"))))
    ) == [
        "acc00",
        "acc02",
        "acc03",
        "acc05",
    ]
    assert sorted(names(retrieve_multiple(conn, query_expression(cond("name", "Like", "acc0%"))))) == [
        f"acc{i:02d}" for i in range(6)
    ]


def test_query_by_attribute_and_columnset(conn: http.client.HTTPConnection) -> None:
    seed_accounts(conn, 3)
    query = (
        f'<query xmlns:q="{QRY}" xsi:type="q:QueryByAttribute"><q:EntityName>account</q:EntityName>'
        '<q:ColumnSet xsi:type="q:ColumnSet"><q:Attributes><q:Attribute>name</q:Attribute></q:Attributes>'
        "</q:ColumnSet>"
        "<q:Attributes><q:Attribute>numberofemployees</q:Attribute></q:Attributes><q:Values><q:Value>1</q:Value></q:Values></query>"
    )
    result = retrieve_multiple(conn, query)
    [ent] = list(result.iter(f"{{{WS06}}}BusinessEntity"))
    assert [etree.QName(c).localname for c in ent] == ["name"]
    assert ent.findtext(f"{{{WS}}}name") == "acc01"


def test_paging_with_cookie(conn: http.client.HTTPConnection) -> None:
    seed_accounts(conn, 5)
    seen: list[str] = []
    cookie, page_no, more = "", 1, True
    while more:
        cookie_xml = f"<q:PagingCookie>{_esc(cookie)}</q:PagingCookie>" if cookie else ""
        page = (
            f"<q:PageInfo><q:PageNumber>{page_no}</q:PageNumber><q:Count>2</q:Count>{cookie_xml}</q:PageInfo>"
        )
        result = retrieve_multiple(conn, query_expression("", page=page))
        seen += names(result)
        more = result.get("MoreRecords") == "true"
        cookie = result.get("PagingCookie") or ""
        page_no += 1
        assert page_no < 10
    # Each record exactly once, in primary-key order (the order the mock pages in, as CRM does).
    assert sorted(seen) == [f"acc{i:02d}" for i in range(5)]
    assert len(seen) == 5
    assert page_no == 4


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_execute_retrieve_multiple_dynamic(conn: http.client.HTTPConnection) -> None:
    seed_accounts(conn, 2)
    query = query_expression("").replace("<query", "<Query").replace("</query>", "</Query>")
    body = (
        f'<Execute xmlns="{WS}"><Request xsi:type="RetrieveMultipleRequest" ReturnDynamicEntities="true">'
        f"{query}</Request></Execute>"
    )
    r = post(conn, "Execute", envelope(body))
    coll = r.find(".//w:Response/q:BusinessEntityCollection")
    assert coll.get("EntityName") == "account"
    ents = coll.findall(f"{{{WS06}}}BusinessEntities/{{{WS06}}}BusinessEntity")
    assert [e.get("Name") for e in ents] == ["account", "account"]


def test_execute_create_update_delete_dynamic(conn: http.client.HTTPConnection, crm: MockCrm) -> None:
    ent = dyn_entity("contact", prop("StringProperty", "lastname", "L"), tag="Entity")
    r = post(
        conn,
        "Execute",
        envelope(
            f'<Execute xmlns="{WS}"><Request xsi:type="CreateRequest">'
            f'<Target xsi:type="TargetCreateDynamic">{ent}</Target></Request></Execute>'
        ),
    )
    rid = r.find(".//w:Response/w:id").text
    ent = dyn_entity(
        "contact",
        prop("KeyProperty", "contactid", rid) + prop("StringProperty", "lastname", "M"),
        tag="Entity",
    )
    r = post(
        conn,
        "Execute",
        envelope(
            f'<Execute xmlns="{WS}"><Request xsi:type="UpdateRequest">'
            f'<Target xsi:type="TargetUpdateDynamic">{ent}</Target></Request></Execute>'
        ),
    )
    assert r.status == 200
    assert crm.records("contact") == [{"contactid": rid, "lastname": "M"}]
    target = (
        '<Target xsi:type="TargetDeleteDynamic"><EntityName>contact</EntityName>'
        f"<EntityId>{rid}</EntityId></Target>"
    )
    r = post(
        conn,
        "Execute",
        envelope(f'<Execute xmlns="{WS}"><Request xsi:type="DeleteRequest">{target}</Request></Execute>'),
    )
    assert r.status == 200
    assert crm.records("contact") == []


def test_fetch_list_and_count(conn: http.client.HTTPConnection) -> None:
    seed_accounts(conn, 4)
    fetch = (
        '<fetch mapping="logical"><entity name="account"><attribute name="name"/><filter>'
        '<condition attribute="numberofemployees" operator="eq" value="1"/></filter></entity></fetch>'
    )
    r = post(conn, "Fetch", envelope(f'<Fetch xmlns="{WS}"><fetchXml>{_esc(fetch)}</fetchXml></Fetch>'))
    resultset = etree.fromstring(r.find(".//w:FetchResult").text.encode())
    assert [x.findtext("name") for x in resultset.findall("result")] == ["acc01"]
    fetch = (
        '<fetch aggregate="true"><entity name="account">'
        '<attribute name="accountid" aggregate="count" alias="n"/></entity></fetch>'
    )
    r = post(conn, "Fetch", envelope(f'<Fetch xmlns="{WS}"><fetchXml>{_esc(fetch)}</fetchXml></Fetch>'))
    assert etree.fromstring(r.find(".//w:FetchResult").text.encode()).findtext("result/n") == "4"


WHOAMI = f'<Execute xmlns="{WS}"><Request xsi:type="WhoAmIRequest" /></Execute>'


@pytest.mark.parametrize(
    "action",
    [f'"{ACTION}Execute"', f"{ACTION}Execute", f' "{ACTION}Execute" ', None, '""'],
    ids=["quoted", "unquoted", "spaces", "absent-body-fallback", "empty-body-fallback"],
)
def test_routing_variants(conn: http.client.HTTPConnection, action: str | None) -> None:
    r = post(conn, "Execute", envelope(WHOAMI), action=action)
    assert r.status == 200
    assert r.find(".//w:Response/w:UserId") is not None


def test_soap12_with_action_in_content_type(conn: http.client.HTTPConnection) -> None:
    ctype = f'application/soap+xml; charset=utf-8; action="{ACTION}Execute"'
    r = post(conn, "Execute", envelope(WHOAMI, soap12=True), action=None, content_type=ctype)
    assert r.status == 200
    assert r.headers["content-type"].startswith("application/soap+xml")
    assert r.xml.tag == f"{{{SOAP12}}}Envelope"
    assert r.xml.find(f".//{{{WS}}}UserId") is not None


def test_prefixes_do_not_matter(conn: http.client.HTTPConnection, crm: MockCrm) -> None:
    body = (
        f'<zz:Create xmlns:zz="{WS}"><zz:entity xmlns:x="{WS06}" '
        'xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:type="x:DynamicEntity" Name="account">'
        '<x:Properties><x:Property i:type="x:StringProperty" Name="name">'
        "<x:Value>P</x:Value></x:Property></x:Properties></zz:entity></zz:Create>"
    )
    assert post(conn, "Create", envelope(body)).status == 200
    assert crm.records("account")[0]["name"] == "P"

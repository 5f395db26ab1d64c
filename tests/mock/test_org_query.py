"""RetrieveMultiple on the Organization service: QueryExpression conditions, orders and paging cookies,
QueryByAttribute, and FetchExpression paging, over records written through either endpoint."""

from __future__ import annotations

from xml.sax.saxutils import escape

from crmload.mock import MockCrm
from tests.mock.org_helpers import NS, create_req, envelope, execute, kv, post, request, result, string, typed

ARR = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"


def _seed(crm: MockCrm, n: int = 7) -> None:
    for i in range(n):
        attrs = kv("name", string(f"Acc {i}")) + kv("numberofemployees", typed("int", str(i * 10)))
        assert post(crm, "Execute", envelope(execute(create_req("account", attrs)))).status == 200


def _query_expression(page: int, count: int, cookie: str | None, *, min_employees: int = 0) -> str:
    cookie_xml = (
        f"<a:PagingCookie>{escape(cookie)}</a:PagingCookie>" if cookie else '<a:PagingCookie i:nil="true"/>'
    )
    return (
        '<b:value i:type="a:QueryExpression"><a:ColumnSet><a:AllColumns>false</a:AllColumns>'
        f'<a:Columns xmlns:c="{ARR}"><c:string>name</c:string></a:Columns></a:ColumnSet>'
        "<a:Criteria><a:Conditions><a:ConditionExpression><a:AttributeName>numberofemployees</a:AttributeName>"
        f'<a:Operator>GreaterEqual</a:Operator><a:Values xmlns:c="{ARR}"><c:anyType i:type="d:int" '
        f'xmlns:d="http://www.w3.org/2001/XMLSchema">{min_employees}</c:anyType></a:Values>'
        "</a:ConditionExpression></a:Conditions><a:FilterOperator>And</a:FilterOperator><a:Filters/></a:Criteria>"
        "<a:Distinct>false</a:Distinct><a:EntityName>account</a:EntityName><a:LinkEntities/><a:Orders>"
        "<a:OrderExpression><a:AttributeName>numberofemployees</a:AttributeName><a:OrderType>Descending"
        f"</a:OrderType></a:OrderExpression></a:Orders><a:PageInfo><a:Count>{count}</a:Count>"
        f"<a:PageNumber>{page}</a:PageNumber>{cookie_xml}<a:ReturnTotalRecordCount>true"
        "</a:ReturnTotalRecordCount></a:PageInfo><a:NoLock>false</a:NoLock></b:value>"
    )


def _page(crm: MockCrm, query: str) -> tuple[list[str], bool, str | None, int]:
    reply = post(
        crm, "Execute", envelope(execute(request("RetrieveMultiple", "RetrieveMultiple", kv("Query", query))))
    )
    assert reply.status == 200, reply.body
    coll = result(reply, "EntityCollection")
    names = [
        p.findtext("b:value", namespaces=NS)
        for p in coll.findall("a:Entities/a:Entity/a:Attributes/a:KeyValuePairOfstringanyType", NS)
    ]
    cookie = coll.find("a:PagingCookie", NS)
    cookie_text = None if cookie.get(f"{{{NS['i']}}}nil") == "true" else cookie.text
    more = coll.findtext("a:MoreRecords", namespaces=NS) == "true"
    return names, more, cookie_text, int(coll.findtext("a:TotalRecordCount", namespaces=NS))


def test_query_expression_pages_with_cookies(crm: MockCrm) -> None:
    _seed(crm)
    seen: list[str] = []
    page, cookie, more = 1, None, True
    while more:
        names, more, cookie, total = _page(crm, _query_expression(page, 3, cookie, min_employees=10))
        seen += names
        page += 1
    assert seen == [f"Acc {i}" for i in range(6, 0, -1)]
    assert total == 6
    assert page == 3


def test_fetch_expression_pages(crm: MockCrm) -> None:
    _seed(crm, 5)
    cookie = ""
    seen: list[str] = []
    for page in (1, 2, 3):
        quoted = escape(cookie, {"'": "&apos;"})
        fetch = (
            f"<fetch mapping='logical' count='2' page='{page}' paging-cookie='{quoted}'>"
            "<entity name='account'><attribute name='name'/><order attribute='name'/></entity></fetch>"
        )
        query = f'<b:value i:type="a:FetchExpression"><a:Query>{escape(fetch)}</a:Query></b:value>'
        names, more, next_cookie, _ = _page(crm, query)
        seen += names
        cookie = next_cookie or ""
        assert more == (page < 3)
    assert seen == [f"Acc {i}" for i in range(5)]


def test_query_by_attribute(crm: MockCrm) -> None:
    _seed(crm, 3)
    query = (
        f'<b:value i:type="a:QueryByAttribute"><a:Attributes xmlns:c="{ARR}"><c:string>name</c:string>'
        f"</a:Attributes><a:ColumnSet><a:AllColumns>true</a:AllColumns></a:ColumnSet><a:EntityName>account"
        f'</a:EntityName><a:Values xmlns:c="{ARR}"><c:anyType i:type="d:string" '
        'xmlns:d="http://www.w3.org/2001/XMLSchema">acc 1</c:anyType></a:Values></b:value>'
    )
    reply = post(
        crm, "Execute", envelope(execute(request("RetrieveMultiple", "RetrieveMultiple", kv("Query", query))))
    )
    ents = result(reply, "EntityCollection").findall("a:Entities/a:Entity", NS)
    assert len(ents) == 1
    pairs = {
        p.findtext("b:key", namespaces=NS): p.findtext("b:value", namespaces=NS)
        for p in ents[0].iter(f"{{{NS['a']}}}KeyValuePairOfstringanyType")
    }
    assert pairs["name"] == "Acc 1"
    assert pairs["numberofemployees"] == "10"

"""Paging as CRM pages, on both endpoints, in raw XML: MoreRecords, PagingCookie, 5,000-record pages,
records in SQL Server's uniqueidentifier order, a cookie that survives a delete, capped counts and the
aggregate limit."""

from __future__ import annotations

import http.client
import random
import uuid
from collections.abc import Iterator
from xml.sax.saxutils import escape

import pytest
from lxml import etree

from crmload.metadata import load_metadata
from crmload.mock import MockCrm, fetch
from crmload.mock.paging import run_page
from crmload.mock.query import Filter, Query, candidates, condition, page_of, select
from crmload.mock.store import Store
from crmload.mock.values import Value
from tests.mock import org_helpers as org
from tests.mock.helpers import QRY, WS, WS06, connect, dyn_entity, envelope, post, prop

ARR = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"


@pytest.fixture
def conn(crm: MockCrm) -> Iterator[http.client.HTTPConnection]:
    c = connect(crm)
    yield c
    c.close()


def _sql_order(rid: str) -> bytes:
    # Written out here, not imported: SQL Server compares bytes 10-15, then 8-9, 6-7, 4-5, 0-3.
    b = uuid.UUID(rid).bytes
    return b[10:16] + b[8:10] + b[6:8] + b[4:6] + b[0:4]


def _seed_2007(conn: http.client.HTTPConnection, n: int) -> list[str]:
    ids = []
    for i in range(n):
        rid = str(uuid.uuid4())
        props = prop("KeyProperty", "accountid", rid) + prop("StringProperty", "name", f"acc{i:02d}")
        body = f'<Create xmlns="{WS}">{dyn_entity("account", props)}</Create>'
        assert post(conn, "Create", envelope(body)).status == 200
        ids.append(rid)
    return ids


def _page_2007(conn: http.client.HTTPConnection, page: int, count: int, cookie: str) -> etree._Element:
    cookie_xml = f"<q:PagingCookie>{escape(cookie)}</q:PagingCookie>" if cookie else ""
    query = (
        f'<query xmlns:q="{QRY}" xsi:type="q:QueryExpression"><q:EntityName>account</q:EntityName>'
        '<q:ColumnSet xsi:type="q:AllColumns" /><q:Distinct>false</q:Distinct>'
        f"<q:PageInfo><q:PageNumber>{page}</q:PageNumber><q:Count>{count}</q:Count>{cookie_xml}</q:PageInfo>"
        "</query>"
    )
    r = post(conn, "RetrieveMultiple", envelope(f'<RetrieveMultiple xmlns="{WS}">{query}</RetrieveMultiple>'))
    assert r.status == 200, r.body
    result = r.find(".//w:RetrieveMultipleResult")
    assert result is not None
    return result


def _ids(result: etree._Element) -> list[str]:
    return [e.findtext(f"{{{WS}}}accountid") or "" for e in result.iter(f"{{{WS06}}}BusinessEntity")]


def test_2007_pages_follow_cookies_in_sql_guid_order(conn: http.client.HTTPConnection, crm: MockCrm) -> None:
    ids = _seed_2007(conn, 12)
    seen: list[str] = []
    mores: list[str] = []
    cookie, page = "", 1
    while True:
        result = _page_2007(conn, page, 5, cookie)
        got = _ids(result)
        seen += got
        mores.append(result.get("MoreRecords") or "")
        cookie = result.get("PagingCookie") or ""
        last = etree.fromstring(cookie.encode()).find("accountid").get("last")
        assert uuid.UUID(last.strip("{}")) == uuid.UUID(got[-1])
        if result.get("MoreRecords") != "true":
            break
        page += 1
    assert mores == ["true", "true", "false"]
    assert [uuid.UUID(s) for s in seen] == [uuid.UUID(s) for s in sorted(ids, key=_sql_order)]
    assert crm.stats()["requests_by_op"]["RetrieveMultiple"] == 3


def test_2007_cookie_survives_a_delete_between_pages(conn: http.client.HTTPConnection) -> None:
    ids = sorted(_seed_2007(conn, 10), key=_sql_order)
    first = _page_2007(conn, 1, 4, "")
    assert [uuid.UUID(s) for s in _ids(first)] == [uuid.UUID(s) for s in ids[:4]]
    # The page's last record goes away before page 2 is asked for: page 2 still starts at the fifth.
    body = f'<Delete xmlns="{WS}"><entityName>account</entityName><id>{ids[3]}</id></Delete>'
    assert post(conn, "Delete", envelope(body)).status == 200
    second = _page_2007(conn, 2, 4, first.get("PagingCookie") or "")
    assert [uuid.UUID(s) for s in _ids(second)] == [uuid.UUID(s) for s in ids[4:8]]


def _seed_2011(crm: MockCrm, n: int) -> None:
    for start in range(0, n, 1000):
        items = [
            org.create_req("account", org.kv("name", org.string(f"a{i}")), element="l:OrganizationRequest")
            for i in range(start, min(n, start + 1000))
        ]
        body = org.execute_multiple(items, continue_on_error=False, return_responses=False)
        assert org.post(crm, "Execute", org.envelope(body)).status == 200


def _page_2011(crm: MockCrm, count: int, page: int, cookie: str | None) -> etree._Element:
    cookie_xml = (
        f"<a:PagingCookie>{escape(cookie)}</a:PagingCookie>" if cookie else '<a:PagingCookie i:nil="true"/>'
    )
    query = (
        '<b:value i:type="a:QueryExpression"><a:ColumnSet><a:AllColumns>false</a:AllColumns>'
        f'<a:Columns xmlns:c="{ARR}"/></a:ColumnSet>'
        "<a:Criteria><a:Conditions/><a:FilterOperator>And</a:FilterOperator><a:Filters/></a:Criteria>"
        "<a:Distinct>false</a:Distinct><a:EntityName>account</a:EntityName><a:LinkEntities/><a:Orders/>"
        f"<a:PageInfo><a:Count>{count}</a:Count><a:PageNumber>{page}</a:PageNumber>{cookie_xml}"
        "<a:ReturnTotalRecordCount>true</a:ReturnTotalRecordCount></a:PageInfo><a:NoLock>false</a:NoLock></b:value>"
    )
    req = org.request("RetrieveMultiple", "RetrieveMultiple", org.kv("Query", query))
    reply = org.post(crm, "Execute", org.envelope(org.execute(req)))
    assert reply.status == 200, reply.body
    coll = org.result(reply, "EntityCollection")
    assert coll is not None
    return coll


def test_2011_pages_hold_at_most_5000_and_counts_stop_at_5000(crm: MockCrm) -> None:
    _seed_2011(crm, 5001)
    first = _page_2011(crm, 6000, 1, None)
    assert len(first.findall("a:Entities/a:Entity", org.NS)) == 5000
    assert first.findtext("a:MoreRecords", namespaces=org.NS) == "true"
    assert first.findtext("a:TotalRecordCount", namespaces=org.NS) == "5000"
    assert first.findtext("a:TotalRecordCountLimitExceeded", namespaces=org.NS) == "true"
    second = _page_2011(crm, 6000, 2, first.findtext("a:PagingCookie", namespaces=org.NS))
    assert len(second.findall("a:Entities/a:Entity", org.NS)) == 1
    assert second.findtext("a:MoreRecords", namespaces=org.NS) == "false"
    ids = {
        e.findtext("a:Id", namespaces=org.NS)
        for c in (first, second)
        for e in c.findall("a:Entities/a:Entity", org.NS)
    }
    assert len(ids) == 5001


def test_fetch_aggregate_over_the_limit_faults(
    conn: http.client.HTTPConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "AGGREGATE_LIMIT", 3)  # CRM's 50,000, scaled down
    xml = (
        "<fetch mapping='logical' aggregate='true'><entity name='account'>"
        "<attribute name='accountid' aggregate='count' alias='n'/></entity></fetch>"
    )
    body = envelope(f'<Fetch xmlns="{WS}"><fetchXml>{escape(xml)}</fetchXml></Fetch>')
    _seed_2007(conn, 3)
    ok = post(conn, "Fetch", body)
    assert etree.fromstring(ok.find(".//w:FetchResult").text.encode()).findtext("result/n") == "3"
    _seed_2007(conn, 1)
    refused = post(conn, "Fetch", body)
    assert refused.status == 500
    assert refused.fault_code() == fetch.CODE_AGGREGATE_LIMIT


def test_page_fast_path_answers_what_the_full_query_answers() -> None:
    """``run_page`` (cached order, chunked scan) against ``page_of(select(...))`` over filters, page numbers,
    cookies, a delete and a create between pages: the same records, MoreRecords and cookies."""
    meta = load_metadata().entity("account")
    store = Store(uuid.uuid4)
    rng = random.Random(3)
    for _ in range(2600):
        store.create(
            "account", "accountid", {"numberofemployees": Value("CrmNumber", rng.randrange(4))}, None
        )

    def full(q: Query) -> tuple[list[dict[str, Value]], bool, str | None]:
        return page_of(q, select(q, candidates(q, store)))

    pages = 0
    for flt in (Filter(), Filter(conditions=[condition(meta, "numberofemployees", "In", ["1", "3"])])):
        for size in (50, 1000, 5000):
            cookie, page_no, more = None, 1, True
            while more:
                q = Query(meta=meta, columns=None, filter=flt, count=size, page=page_no, cookie=cookie)
                got, want = run_page(q, store), full(q)
                assert got == want
                _, more, cookie = got
                if page_no == 2 and got[0]:  # the set changes between pages
                    store.delete("account", got[0][-1]["accountid"].value)
                    store.create("account", "accountid", {}, None)
                page_no += 1
                pages += 1
            by_number = Query(meta=meta, columns=None, filter=flt, count=size, page=3)
            assert run_page(by_number, store) == full(by_number)
    assert pages > 60  # the loops really paged (about 56 unfiltered + 30 filtered pages)

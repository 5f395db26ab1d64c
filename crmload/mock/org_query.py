"""RetrieveMultiple for the mock's Organization service: QueryExpression, QueryByAttribute and
FetchExpression, run by the 2007 endpoint's filter/order/paging engine (``crmload.mock.query``), answered as
an ``EntityCollection`` (Entities, EntityName, MinActiveRowVersion, MoreRecords, PagingCookie,
TotalRecordCount, TotalRecordCountLimitExceeded). LinkEntities and fetch aggregates are not supported
(InvalidArgument).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from lxml import etree

from crmload.metadata import EntityMeta, Metadata
from crmload.mock.entity import entity_meta, invalid
from crmload.mock.envelope import attr_qname, child, text_of
from crmload.mock.fetch import parse_fetch
from crmload.mock.org_values import render_entity_body
from crmload.mock.paging import run_page
from crmload.mock.query import MAX_PAGE, Filter, Query, candidates, condition, page_of, select
from crmload.mock.store import Store

__all__ = ["parse_columns", "parse_org_query", "run_query"]

from crmload.soap import ns

A = ns.XRM2011
_ARR = ns.ARRAYS


def _bool(el: etree._Element | None) -> bool:
    return (text_of(el) or "").strip().lower() in ("true", "1")


def _strings(el: etree._Element | None) -> list[str]:
    return [(s.text or "").strip() for s in el.iterchildren(ns.qn(_ARR, "string"))] if el is not None else []


def parse_columns(el: etree._Element | None, meta: EntityMeta) -> list[str] | None:
    """Read a ColumnSet: None means all columns (AllColumns true, or no ColumnSet at all)."""
    if el is None or _bool(child(el, A, "AllColumns")):
        return None
    cols = [c.lower() for c in _strings(child(el, A, "Columns"))]
    for col in cols:
        if meta.type_of(col) is None:
            raise invalid(f"'{meta.name}' entity doesn't contain attribute with Name = '{col}'.")
    return cols


def _values(el: etree._Element | None) -> list[str]:
    return [v.text or "" for v in el.iterchildren(tag=etree.Element)] if el is not None else []


def _filter(el: etree._Element | None, meta: EntityMeta) -> Filter:
    flt = Filter()
    if el is None:
        return flt
    flt.any_of = (text_of(child(el, A, "FilterOperator")) or "And").strip() == "Or"
    conds = child(el, A, "Conditions")
    for c in conds.iterchildren(ns.qn(A, "ConditionExpression")) if conds is not None else ():
        attr = text_of(child(c, A, "AttributeName")) or ""
        op = (text_of(child(c, A, "Operator")) or "").strip()
        flt.conditions.append(condition(meta, attr, op, _values(child(c, A, "Values"))))
    subs = child(el, A, "Filters")
    for sub in subs.iterchildren(ns.qn(A, "FilterExpression")) if subs is not None else ():
        flt.filters.append(_filter(sub, meta))
    return flt


def _paging(el: etree._Element, query: Query) -> bool:
    """Apply Orders, PageInfo and TopCount; return ReturnTotalRecordCount."""
    orders = child(el, A, "Orders")
    for order in orders.iterchildren(ns.qn(A, "OrderExpression")) if orders is not None else ():
        attr = (text_of(child(order, A, "AttributeName")) or "").strip().lower()
        query.orders.append((attr, (text_of(child(order, A, "OrderType")) or "").strip() == "Descending"))
    info = child(el, A, "PageInfo")
    try:
        top = int((text_of(child(el, A, "TopCount")) or "0").strip() or 0)
        if info is not None:
            query.count = int(text_of(child(info, A, "Count")) or 0)
            query.page = max(1, int(text_of(child(info, A, "PageNumber")) or 1))
    except ValueError:
        raise invalid("PageInfo Count/PageNumber and TopCount must be integers.") from None
    if top > 0:
        query.count, query.page = top, 1
    if info is None:
        return False
    cookie = child(info, A, "PagingCookie")
    query.cookie = text_of(cookie) or None
    return _bool(child(info, A, "ReturnTotalRecordCount"))


def parse_org_query(el: etree._Element | None, metadata: Metadata) -> tuple[Query, bool]:
    """Parse a ``query``/``Query`` value: (the query, whether to count the total)."""
    kind = attr_qname(el) if el is not None else None
    if el is None or kind is None or kind[0] != A:
        raise invalid("The query must be a QueryExpression, QueryByAttribute or FetchExpression.")
    if kind[1] == "FetchExpression":
        query, aggregates = parse_fetch(text_of(child(el, A, "Query")) or "", metadata)
        if aggregates:
            raise invalid("Aggregate fetch queries are not supported by this mock.")
        return query, False
    meta = entity_meta(metadata, text_of(child(el, A, "EntityName")))
    query = Query(meta=meta, columns=parse_columns(child(el, A, "ColumnSet"), meta), filter=Filter())
    if kind[1] == "QueryExpression":
        links = child(el, A, "LinkEntities")
        if links is not None and len(links):
            raise invalid("LinkEntities are not supported by this mock.")
        query.filter = _filter(child(el, A, "Criteria"), meta)
    elif kind[1] == "QueryByAttribute":
        names, vals = _strings(child(el, A, "Attributes")), _values(child(el, A, "Values"))
        if len(names) != len(vals):
            raise invalid("QueryByAttribute needs as many Values as Attributes.")
        query.filter.conditions = [condition(meta, n, "Equal", [v]) for n, v in zip(names, vals, strict=True)]
    else:
        raise invalid(f"The query type '{kind[1]}' is not supported.")
    return query, _paging(el, query)


def run_query(query: Query, total: bool, store: Store) -> str:
    """Run ``query`` and render the children of its EntityCollection (prefixes a, i bound by the caller)."""
    if total:  # a count needs every match; CRM's stops at 5,000
        hits = select(query, candidates(query, store))
        page, more, cookie = page_of(query, hits)
    else:
        hits = []
        page, more, cookie = run_page(query, store)
    # CRM counts at most 5,000 records and says when there were more: a count is never an exact total.
    exceeded = total and len(hits) > MAX_PAGE
    entities = "".join(
        f"<a:Entity>{render_entity_body(query.meta, r, query.columns)}</a:Entity>" for r in page
    )
    cookie_el = (
        f"<a:PagingCookie>{escape(cookie)}</a:PagingCookie>" if cookie else '<a:PagingCookie i:nil="true"/>'
    )
    return (
        f"<a:Entities>{entities}</a:Entities><a:EntityName>{query.meta.name}</a:EntityName>"
        f"<a:MinActiveRowVersion>-1</a:MinActiveRowVersion><a:MoreRecords>{'true' if more else 'false'}"
        f"</a:MoreRecords>{cookie_el}<a:TotalRecordCount>{min(len(hits), MAX_PAGE) if total else -1}"
        f"</a:TotalRecordCount><a:TotalRecordCountLimitExceeded>{'true' if exceeded else 'false'}"
        "</a:TotalRecordCountLimitExceeded>"
    )

"""A basic FetchXML subset for the mock's ``Fetch`` operation: list and count the records of one entity.

Supported: ``<fetch mapping="logical" count=".." page=".." aggregate="true">``, one ``<entity name>``,
``<attribute name>`` / ``<all-attributes/>``, ``<attribute ... aggregate="count|countcolumn" alias>``,
``<filter type="and|or">`` with ``<condition attribute operator value>`` (eq, ne, null, not-null, in,
not-in, like,
not-like, gt, ge, lt, le) and nested filters, ``<order attribute descending>``. The answer is CRM 4.0's
``<resultset morerecords="0|1" paging-cookie="..."><result>...</result></resultset>`` string.
An aggregate over more than ``AGGREGATE_LIMIT`` (50,000) records faults as CRM's does
(AggregateQueryRecordLimit, ``0x8004E023``): a count is no way to learn how many records a big entity holds.
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from crmload.metadata import Metadata
from crmload.mock.entity import entity_meta, invalid
from crmload.mock.envelope import SoapFault, parse_xml
from crmload.mock.paging import run_page
from crmload.mock.query import Filter, Query, candidates, condition, select
from crmload.mock.store import Record, Store
from crmload.mock.values import Value

__all__ = ["AGGREGATE_LIMIT", "CODE_AGGREGATE_LIMIT", "parse_fetch", "run_fetch"]

#: CRM refuses an aggregate query over more records than this (AggregateQueryRecordLimit).
AGGREGATE_LIMIT = 50_000
CODE_AGGREGATE_LIMIT = "0x8004E023"

_OPS = {
    "eq": "Equal",
    "ne": "NotEqual",
    "neq": "NotEqual",
    "null": "Null",
    "not-null": "NotNull",
    "in": "In",
    "not-in": "NotIn",
    "like": "Like",
    "not-like": "NotLike",
    "gt": "GreaterThan",
    "ge": "GreaterEqual",
    "lt": "LessThan",
    "le": "LessEqual",
}


def _filter(el: etree._Element, query: Query) -> Filter:
    flt = Filter(any_of=(el.get("type") or "and").lower() == "or")
    for item in el.iterchildren("condition", "filter"):
        if item.tag == "filter":
            flt.filters.append(_filter(item, query))
            continue
        op = _OPS.get((item.get("operator") or "").lower())
        if op is None:
            raise invalid(f"The fetch operator '{item.get('operator')}' is not supported.")
        texts = [v.text or "" for v in item.iterchildren("value")]
        if item.get("value") is not None:
            texts.insert(0, item.get("value") or "")
        flt.conditions.append(condition(query.meta, item.get("attribute") or "", op, texts))
    return flt


def _cell(name: str, v: Value) -> str:
    if v.value is None:
        return ""
    val = v.value
    if isinstance(val, uuid.UUID):
        text = "{" + str(val).upper() + "}"
    elif isinstance(val, bool):
        text = "1" if val else "0"
    else:
        text = escape(str(val))
    ref = f" type={quoteattr(v.ref)}" if v.ref else ""
    return f"<{name}{ref}>{text}</{name}>"


def parse_fetch(fetch_xml: str, metadata: Metadata) -> tuple[Query, list[tuple[str, str]]]:
    """Parse FetchXML into a ``Query`` and its (alias, attribute) count aggregates (both endpoints use it)."""
    root = parse_xml(fetch_xml.encode("utf-8"))
    ent = root.find("entity")
    if root.tag != "fetch" or ent is None:
        raise invalid("The fetch XML must be <fetch><entity name=...>...</entity></fetch>.")
    meta = entity_meta(metadata, ent.get("name"))
    columns: list[str] | None = []
    aggregates: list[tuple[str, str]] = []
    for attr in ent.iterchildren("attribute", "all-attributes"):
        if attr.tag == "all-attributes":
            columns = None
            continue
        name = (attr.get("name") or "").lower()
        if meta.type_of(name) is None:
            raise invalid(f"'{meta.name}' entity doesn't contain attribute with Name = '{name}'.")
        if attr.get("aggregate"):
            aggregates.append((attr.get("alias") or name, name))
        elif columns is not None:
            columns.append(name)
    query = Query(meta=meta, columns=columns, filter=Filter())
    for flt in ent.iterchildren("filter"):
        query.filter.filters.append(_filter(flt, query))
    for order in ent.iterchildren("order"):
        query.orders.append(((order.get("attribute") or "").lower(), order.get("descending") == "true"))
    try:
        query.count = int(root.get("count") or 0)
        query.page = max(1, int(root.get("page") or 1))
    except ValueError:
        raise invalid("fetch count and page must be integers.") from None
    query.cookie = root.get("paging-cookie")
    return query, aggregates


def run_fetch(fetch_xml: str, metadata: Metadata, store: Store) -> str:
    """Run a FetchXML query against ``store`` and return the result set string."""
    query, aggregates = parse_fetch(fetch_xml, metadata)
    columns = query.columns
    if aggregates:
        hits = select(query, candidates(query, store))
        if len(hits) > AGGREGATE_LIMIT:
            raise SoapFault(
                CODE_AGGREGATE_LIMIT, "AggregateQueryRecordLimit exceeded. Cannot perform this operation."
            )
        cells = "".join(f"<{alias}>{sum(1 for r in hits if _has(r, n))}</{alias}>" for alias, n in aggregates)
        return f'<resultset morerecords="0"><result>{cells}</result></resultset>'
    page, more, cookie = run_page(query, store)
    rows = "".join(
        "<result>"
        + "".join(_cell(n, v) for n, v in r.items() if columns is None or n in columns)
        + "</result>"
        for r in page
    )
    cookie_attr = f" paging-cookie={quoteattr(cookie)}" if cookie else ""
    return f'<resultset morerecords="{int(more)}"{cookie_attr}>{rows}</resultset>'


def _has(rec: Record, name: str) -> bool:
    v = rec.get(name)
    return v is not None and v.value is not None

"""RetrieveMultiple for the mock: QueryExpression and QueryByAttribute (crm/2006/Query), filtering and paging.

Supported condition operators: Equal, NotEqual, In, NotIn, Null, NotNull, Like, NotLike, GreaterThan,
GreaterEqual, LessThan, LessEqual. Paging follows CRM: ``PageInfo/{PageNumber, Count, PagingCookie}``; the
answer carries ``MoreRecords`` and a cookie ``<cookie page="N"><accountid last="{GUID}" first="{GUID}"
/></cookie>``. Pages hold at most 5,000 records (a larger or missing Count gets 5,000, as CRM caps it).

Order, as CRM's SQL has it: the query's orders, then the primary key, compared as SQL Server compares a
``uniqueidentifier`` (bytes 10-15 first, then 8-9, 6-7, 4-5, 0-3), so pages never depend on insertion order.
Without orders, a cookie resumes strictly after its ``last`` id (``accountid > last``), so a record deleted or
added between two pages neither repeats nor hides the ones after it; with orders, after the ``last`` record
if it is still there, else by page number.
"""

from __future__ import annotations

import bisect
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from lxml import etree

from crmload.metadata import EntityMeta, Metadata
from crmload.mock.entity import entity_meta, invalid
from crmload.mock.envelope import attr_qname, child, parse_xml, text_of
from crmload.mock.store import Record, Store
from crmload.mock.values import BadValue, Value, convert, render_dynamic, render_typed
from crmload.soap import ns

__all__ = [
    "MAX_PAGE",
    "Condition",
    "Filter",
    "Query",
    "candidates",
    "cookie_last",
    "cookie_of",
    "guid_order",
    "matches",
    "page_of",
    "page_size",
    "parse_query",
    "render_collection",
    "select",
]

Q = ns.QUERY2006
#: The most records one page holds (CRM's limit for a RetrieveMultiple or a fetch page).
MAX_PAGE = 5000


@dataclass(slots=True)
class Condition:
    """One ``attribute operator values`` test."""

    attribute: str
    operator: str
    values: list[Any]


@dataclass(slots=True)
class Filter:
    """An And/Or group of conditions and nested filters."""

    any_of: bool = False
    conditions: list[Condition] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)


@dataclass(slots=True)
class Query:
    """A parsed query: entity, columns (None = all), filter, orders, paging."""

    meta: EntityMeta
    columns: list[str] | None
    filter: Filter
    orders: list[tuple[str, bool]] = field(default_factory=list)
    count: int = 0
    page: int = 1
    cookie: str | None = None


def _like(pattern: str) -> re.Pattern[str]:
    parts = (".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE | re.DOTALL)


def _norm(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def _compare(op: str, have: Any, want: Sequence[Any]) -> bool:
    if op == "Null":
        return have is None
    if op == "NotNull":
        return have is not None
    if have is None:
        return op in ("NotEqual", "NotIn")
    h = _norm(have)
    ws = [_norm(w) for w in want]
    tests: dict[str, Callable[[], bool]] = {
        "Equal": lambda: bool(ws) and h == ws[0],
        "NotEqual": lambda: bool(ws) and h != ws[0],
        "In": lambda: h in ws,
        "NotIn": lambda: h not in ws,
        "Like": lambda: bool(ws) and bool(_like(str(ws[0])).match(str(h))),
        "NotLike": lambda: bool(ws) and not _like(str(ws[0])).match(str(h)),
        "GreaterThan": lambda: bool(ws) and h > ws[0],
        "GreaterEqual": lambda: bool(ws) and h >= ws[0],
        "LessThan": lambda: bool(ws) and h < ws[0],
        "LessEqual": lambda: bool(ws) and h <= ws[0],
    }
    try:
        return tests[op]()
    except TypeError:
        return False


def matches(flt: Filter, rec: Record) -> bool:
    """Return True when ``rec`` passes ``flt``."""
    results = (
        _compare(c.operator, rec[c.attribute].value if c.attribute in rec else None, c.values)
        for c in flt.conditions
    )
    nested = (matches(f, rec) for f in flt.filters)
    if flt.any_of:
        return any(results) or any(nested) or (not flt.conditions and not flt.filters)
    return all(results) and all(nested)


def condition(meta: EntityMeta, attribute: str, operator: str, texts: Sequence[str]) -> Condition:
    """Build a condition, converting the value texts to the attribute's CRM type."""
    attr = attribute.strip().lower()
    crm_type = meta.type_of(attr)
    if crm_type is None:
        raise invalid(f"'{meta.name}' entity doesn't contain attribute with Name = '{attr}'.")
    if operator not in (
        "Null",
        "NotNull",
        "Equal",
        "NotEqual",
        "In",
        "NotIn",
        "Like",
        "NotLike",
    ) and operator not in (
        "GreaterThan",
        "GreaterEqual",
        "LessThan",
        "LessEqual",
    ):
        raise invalid(f"The condition operator '{operator}' is not supported.")
    try:
        values = [t if operator in ("Like", "NotLike") else convert(crm_type, t).value for t in texts]
    except BadValue as exc:
        raise invalid(f"Invalid condition value for '{attr}': {exc}") from None
    return Condition(attr, operator, values)


def _parse_filter(el: etree._Element | None, meta: EntityMeta) -> Filter:
    flt = Filter()
    if el is None:
        return flt
    flt.any_of = (text_of(child(el, Q, "FilterOperator")) or "And").strip() == "Or"
    conds = child(el, Q, "Conditions")
    for c in conds.iterchildren(ns.qn(Q, "Condition")) if conds is not None else ():
        vals = child(c, Q, "Values")
        texts = [v.text or "" for v in vals.iterchildren(ns.qn(Q, "Value"))] if vals is not None else []
        attr = text_of(child(c, Q, "AttributeName")) or ""
        flt.conditions.append(condition(meta, attr, (text_of(child(c, Q, "Operator")) or "").strip(), texts))
    subs = child(el, Q, "Filters")
    for sub in subs.iterchildren(ns.qn(Q, "Filter")) if subs is not None else ():
        flt.filters.append(_parse_filter(sub, meta))
    return flt


def _columns(el: etree._Element | None, meta: EntityMeta) -> list[str] | None:
    if el is None:
        return None
    qname = attr_qname(el)
    if qname == (Q, "AllColumns"):
        return None
    attrs = child(el, Q, "Attributes")
    cols = (
        [(a.text or "").strip().lower() for a in attrs.iterchildren(ns.qn(Q, "Attribute"))]
        if attrs is not None
        else []
    )
    for col in cols:
        if meta.type_of(col) is None:
            raise invalid(f"'{meta.name}' entity doesn't contain attribute with Name = '{col}'.")
    return cols


def parse_query(el: etree._Element | None, metadata: Metadata) -> Query:
    """Parse a ``query``/``Query`` element (QueryExpression or QueryByAttribute)."""
    qname = attr_qname(el) if el is not None else None
    if el is None or qname not in ((Q, "QueryExpression"), (Q, "QueryByAttribute")):
        raise invalid("The query must be a QueryExpression or a QueryByAttribute.")
    meta = entity_meta(metadata, text_of(child(el, Q, "EntityName")))
    query = Query(meta=meta, columns=_columns(child(el, Q, "ColumnSet"), meta), filter=Filter())
    if qname == (Q, "QueryExpression"):
        query.filter = _parse_filter(child(el, Q, "Criteria"), meta)
    else:
        names_el, values_el = child(el, Q, "Attributes"), child(el, Q, "Values")
        names = (
            [a.text or "" for a in names_el.iterchildren(ns.qn(Q, "Attribute"))]
            if names_el is not None
            else []
        )
        vals = (
            [v.text or "" for v in values_el.iterchildren(ns.qn(Q, "Value"))] if values_el is not None else []
        )
        if len(names) != len(vals):
            raise invalid("QueryByAttribute needs as many Values as Attributes.")
        query.filter.conditions = [condition(meta, n, "Equal", [v]) for n, v in zip(names, vals, strict=True)]
    orders = child(el, Q, "Orders")
    for order in orders.iterchildren(ns.qn(Q, "Order")) if orders is not None else ():
        attr = (text_of(child(order, Q, "AttributeName")) or "").strip().lower()
        desc = (text_of(child(order, Q, "OrderType")) or "").strip() == "Descending"
        query.orders.append((attr, desc))
    info = child(el, Q, "PageInfo")
    if info is not None:
        try:
            query.count = int(text_of(child(info, Q, "Count")) or 0)
            query.page = max(1, int(text_of(child(info, Q, "PageNumber")) or 1))
        except ValueError:
            raise invalid("PageInfo Count and PageNumber must be integers.") from None
        query.cookie = text_of(child(info, Q, "PagingCookie")) or None
    return query


def guid_order(value: uuid.UUID) -> bytes:
    """The sort key SQL Server gives a ``uniqueidentifier``: bytes 10-15, 8-9, 6-7, 4-5, then 0-3."""
    b = value.bytes
    return b[10:16] + b[8:10] + b[6:8] + b[4:6] + b[0:4]


def _pk_order(key: str) -> Callable[[Record], bytes]:
    def order(rec: Record) -> bytes:
        value = rec[key].value if key in rec else None
        return guid_order(value) if isinstance(value, uuid.UUID) else b""

    return order


def candidates(query: Query, store: Store) -> list[Record]:
    """The records ``query`` may match: those its primary-key Equal/In condition names (an index seek, as
    SQL Server does for ``accountid IN (...)``, so a verify's batched reads do not scan the table), else
    all of them. ``select`` still applies the whole filter."""
    flt = query.filter
    pk = query.meta.primary_key
    if not flt.any_of:
        for c in flt.conditions:
            if c.attribute == pk and c.operator in ("Equal", "In"):
                return store.some(query.meta.name, (v for v in c.values if isinstance(v, uuid.UUID)))
    return store.all(query.meta.name)


def select(query: Query, records: list[Record]) -> list[Record]:
    """Filter and order ``records``: the query's orders, then the primary key (see the module docstring)."""
    hits = [r for r in records if matches(query.filter, r)]
    hits.sort(key=_pk_order(query.meta.primary_key))
    for attr, desc in reversed(query.orders):
        present = [r for r in hits if r.get(attr) is not None and r[attr].value is not None]
        absent = [r for r in hits if r.get(attr) is None or r[attr].value is None]
        present.sort(key=lambda r: _norm(r[attr].value), reverse=desc)
        hits = present + absent  # nulls last either way
    return hits


def cookie_last(cookie: str | None, key: str) -> uuid.UUID | None:
    if not cookie:
        return None
    try:
        el = parse_xml(cookie.encode("utf-8")).find(key)
        return uuid.UUID((el.get("last") or "").strip("{}")) if el is not None else None
    except Exception:  # a bad cookie falls back to the page number, as CRM does
        return None


def page_size(query: Query) -> int:
    """The records one page of ``query`` holds: its Count, at most (and by default) 5,000."""
    return query.count if 0 < query.count <= MAX_PAGE else MAX_PAGE


def page_of(query: Query, hits: list[Record]) -> tuple[list[Record], bool, str | None]:
    """Return (this page, more records, paging cookie) for ``hits`` as ``select`` ordered them."""
    size = page_size(query)
    key = query.meta.primary_key
    start = (query.page - 1) * size
    last = cookie_last(query.cookie, key)
    if last is not None and not query.orders:
        start = bisect.bisect_right(hits, guid_order(last), key=_pk_order(key))
    elif last is not None:
        ids = [r[key].value for r in hits]
        if last in ids:
            start = ids.index(last) + 1
    page = hits[start : start + size]
    return page, start + size < len(hits), cookie_of(query, page)


def cookie_of(query: Query, page: list[Record]) -> str | None:
    """The paging cookie CRM answers for ``page``: its first and last primary keys (None for no records)."""
    if not page:
        return None
    key = query.meta.primary_key
    first_id, last_id = page[0][key].value, page[-1][key].value
    last_s, first_s = str(last_id).upper(), str(first_id).upper()
    return f'<cookie page="{query.page}"><{key} last="{{{last_s}}}" first="{{{first_s}}}" /></cookie>'


def _project(rec: Record, columns: list[str] | None) -> list[tuple[str, Value]]:
    if columns is None:
        return list(rec.items())
    return [(c, rec[c]) for c in columns if c in rec]


def render_entity(
    meta: EntityMeta, rec: Record, columns: list[str] | None, *, dynamic: bool, tag: str, xmlns: str = ""
) -> str:
    """Render one record as ``tag`` in the typed form or as a DynamicEntity (prefix q1 = 2006 WebServices).

    ``xmlns`` is inserted verbatim as namespace declarations on the element (e.g. to bind q1).
    """
    items = _project(rec, columns)
    if dynamic:
        props = "".join(render_dynamic(n, v, "q1") for n, v in items)
        return (
            f'<{tag}{xmlns} xsi:type="q1:DynamicEntity" Name="{meta.name}"><q1:Properties>{props}'
            f"</q1:Properties></{tag}>"
        )
    return (
        f'<{tag}{xmlns} xsi:type="{meta.name}">' + "".join(render_typed(n, v) for n, v in items) + f"</{tag}>"
    )


def render_collection(
    query: Query, page: list[Record], more: bool, cookie: str | None, *, dynamic: bool, tag: str
) -> str:
    """Render a BusinessEntityCollection element named ``tag`` (q1 must be bound to 2006 WebServices)."""
    cookie_attr = f" PagingCookie={quoteattr(cookie)}" if cookie else ""
    entities = "".join(
        render_entity(query.meta, r, query.columns, dynamic=dynamic, tag="q1:BusinessEntity") for r in page
    )
    return (
        f'<{tag} xmlns:q1="{ns.WS2006}" EntityName="{query.meta.name}" '
        f'MoreRecords="{"true" if more else "false"}"'
        f"{cookie_attr}><q1:BusinessEntities>{entities}</q1:BusinessEntities></{tag}>"
    )

"""One page of a query without sorting and copying the whole table for every page.

CRM answers a paging cookie with an index seek (``accountid > last``) and reads one page. The mock did the
same work as a full query for every page (copy every record, filter, sort): O(table) per page, so an export of
N records cost O(N^2 / page). Here, when the query has no orders (the primary key is its order), the entity's
ids come sorted from the store's cache (``Store.ordered``, rebuilt only after a create or delete), the page
starts at the cookie's ``last`` id by bisection (or after skipping ``(page - 1) * size`` matches without a
cookie), and records are copied and filtered a chunk at a time until the page and one more match are found.
The answer is the one ``page_of(select(...))`` gives; queries with orders, or by primary key, take that path.
"""

from __future__ import annotations

import bisect

from crmload.mock.query import (
    Query,
    candidates,
    cookie_last,
    cookie_of,
    guid_order,
    matches,
    page_of,
    page_size,
    select,
)
from crmload.mock.store import Record, Store

__all__ = ["run_page"]

_CHUNK = 1000


def run_page(query: Query, store: Store) -> tuple[list[Record], bool, str | None]:
    """(this page, more records, paging cookie) of ``query`` against ``store``."""
    pk = query.meta.primary_key
    if query.orders or (not query.filter.any_of and any(c.attribute == pk for c in query.filter.conditions)):
        return page_of(query, select(query, candidates(query, store)))
    size = page_size(query)
    keys, ids = store.ordered(query.meta.name, guid_order)
    last = cookie_last(query.cookie, pk)
    pos, skip = (
        (bisect.bisect_right(keys, guid_order(last)), 0) if last is not None else (0, (query.page - 1) * size)
    )
    page: list[Record] = []
    while pos < len(ids):
        for rec in store.some(query.meta.name, ids[pos : pos + _CHUNK]):
            if not matches(query.filter, rec):
                continue
            if skip:
                skip -= 1
            elif len(page) == size:
                return page, True, cookie_of(query, page)
            else:
                page.append(rec)
        pos += _CHUNK
    return page, False, cookie_of(query, page)

"""The mock's CRM 4.0 operations: each takes the operation's body element and returns the response fragment.

Direct operations answer in the strongly typed form (the org-specific WSDL's entity classes); ``Execute`` with
``ReturnDynamicEntities="true"`` answers with ``DynamicEntity`` elements in ``crm/2006/WebServices``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

from crmload.metadata import Metadata
from crmload.mock.entity import entity_meta, invalid, parse_entity, parse_guid
from crmload.mock.envelope import CODE_DUPLICATE, CODE_NOT_FOUND, SoapFault, attr_qname, child, text_of
from crmload.mock.fetch import run_fetch
from crmload.mock.paging import run_page
from crmload.mock.query import (
    _columns,
    parse_query,
    render_collection,
    render_entity,
)
from crmload.mock.store import Dangling, Duplicate, Missing, Store
from crmload.soap import ns

__all__ = ["OPERATIONS", "Context"]

W = ns.WS2007
_XMLNS = f' xmlns="{W}"'
_Q1 = f' xmlns:q1="{ns.WS2006}"'


@dataclass(frozen=True, slots=True)
class Context:
    """What an operation needs: the metadata table, the store and the org's fixed ids (for WhoAmI)."""

    metadata: Metadata
    store: Store
    user_id: uuid.UUID
    business_unit_id: uuid.UUID
    organization_id: uuid.UUID


def _not_found(entity: str, rid: uuid.UUID) -> SoapFault:
    return SoapFault(CODE_NOT_FOUND, f"{entity} With Id = {rid} Does Not Exist", kind="not_found")


def _create(ctx: Context, entity_el: etree._Element | None, *, dynamic_default: bool = False) -> uuid.UUID:
    parsed = parse_entity(entity_el, ctx.metadata, dynamic_default=dynamic_default)
    try:
        return ctx.store.create(parsed.meta.name, parsed.meta.primary_key, parsed.attrs, parsed.id)
    except Dangling as d:
        raise _not_found(d.entity, d.id) from None
    except Duplicate:
        raise SoapFault(CODE_DUPLICATE, "Cannot insert duplicate key.", kind="duplicate") from None


def _update(ctx: Context, entity_el: etree._Element | None, *, dynamic_default: bool = False) -> None:
    parsed = parse_entity(entity_el, ctx.metadata, dynamic_default=dynamic_default)
    if parsed.id is None:
        raise invalid(
            f"Update of '{parsed.meta.name}' requires its key attribute '{parsed.meta.primary_key}'."
        )
    try:
        ctx.store.update(parsed.meta.name, parsed.id, parsed.attrs, parsed.meta.primary_key)
    except Dangling as d:
        raise _not_found(d.entity, d.id) from None
    except Duplicate:
        raise SoapFault(CODE_DUPLICATE, "Cannot insert duplicate key.", kind="duplicate") from None
    except Missing:
        raise _not_found(parsed.meta.name, parsed.id) from None


def _delete(ctx: Context, name: str | None, id_text: str | None) -> None:
    meta = entity_meta(ctx.metadata, name)
    rid = parse_guid(id_text, "id")
    try:
        ctx.store.delete(meta.name, rid)
    except Missing:
        raise _not_found(meta.name, rid) from None


def _retrieve(
    ctx: Context,
    name: str | None,
    id_text: str | None,
    cols: etree._Element | None,
    *,
    dynamic: bool,
    tag: str,
    xmlns: str = "",
) -> str:
    meta = entity_meta(ctx.metadata, name)
    rid = parse_guid(id_text, "id")
    columns = _columns(cols, meta)
    try:
        rec = ctx.store.get(meta.name, rid)
    except Missing:
        raise _not_found(meta.name, rid) from None
    return render_entity(meta, rec, columns, dynamic=dynamic, tag=tag, xmlns=xmlns)


def op_create(ctx: Context, el: etree._Element) -> str:
    """Create: ``Create/entity`` -> ``CreateResponse/CreateResult``."""
    rid = _create(ctx, child(el, W, "entity"))
    return f"<CreateResponse{_XMLNS}><CreateResult>{rid}</CreateResult></CreateResponse>"


def op_update(ctx: Context, el: etree._Element) -> str:
    """Update: ``Update/entity`` (key inside the entity) -> empty ``UpdateResponse``."""
    _update(ctx, child(el, W, "entity"))
    return f"<UpdateResponse{_XMLNS} />"


def op_delete(ctx: Context, el: etree._Element) -> str:
    """Delete: ``Delete/{entityName, id}`` -> empty ``DeleteResponse``."""
    _delete(ctx, text_of(child(el, W, "entityName")), text_of(child(el, W, "id")))
    return f"<DeleteResponse{_XMLNS} />"


def op_retrieve(ctx: Context, el: etree._Element) -> str:
    """Retrieve: ``Retrieve/{entityName, id, columnSet}`` -> ``RetrieveResult`` in the typed form."""
    name, rid = text_of(child(el, W, "entityName")), text_of(child(el, W, "id"))
    body = _retrieve(ctx, name, rid, child(el, W, "columnSet"), dynamic=False, tag="RetrieveResult")
    return f"<RetrieveResponse{_XMLNS}>{body}</RetrieveResponse>"


def op_retrieve_multiple(ctx: Context, el: etree._Element) -> str:
    """RetrieveMultiple: ``RetrieveMultiple/query`` -> a typed ``BusinessEntityCollection``."""
    query = parse_query(child(el, W, "query"), ctx.metadata)
    page, more, cookie = run_page(query, ctx.store)
    body = render_collection(query, page, more, cookie, dynamic=False, tag="RetrieveMultipleResult")
    return f"<RetrieveMultipleResponse{_XMLNS}>{body}</RetrieveMultipleResponse>"


def op_fetch(ctx: Context, el: etree._Element) -> str:
    """Fetch: ``Fetch/fetchXml`` (a string) -> ``FetchResult`` (a string holding the result set XML)."""
    result = run_fetch(text_of(child(el, W, "fetchXml")) or "", ctx.metadata, ctx.store)
    return f"<FetchResponse{_XMLNS}><FetchResult>{escape(result)}</FetchResult></FetchResponse>"


def _dynamic_flag(req: etree._Element) -> bool:
    return (req.get("ReturnDynamicEntities") or "").strip().lower() in ("true", "1")


def _target(req: etree._Element, expected: str) -> etree._Element:
    target = child(req, W, "Target")
    if target is None or attr_qname(target) != (W, expected):
        raise invalid(f"This mock supports only {expected} targets here.")
    return target


def _exec_create(ctx: Context, req: etree._Element) -> str:
    rid = _create(ctx, child(_target(req, "TargetCreateDynamic"), W, "Entity"), dynamic_default=True)
    return f'<Response xsi:type="CreateResponse"><id>{rid}</id></Response>'


def _exec_update(ctx: Context, req: etree._Element) -> str:
    _update(ctx, child(_target(req, "TargetUpdateDynamic"), W, "Entity"), dynamic_default=True)
    return '<Response xsi:type="UpdateResponse" />'


def _exec_delete(ctx: Context, req: etree._Element) -> str:
    target = _target(req, "TargetDeleteDynamic")
    _delete(ctx, text_of(child(target, W, "EntityName")), text_of(child(target, W, "EntityId")))
    return '<Response xsi:type="DeleteResponse" />'


def _exec_retrieve(ctx: Context, req: etree._Element) -> str:
    target = _target(req, "TargetRetrieveDynamic")
    name, rid = text_of(child(target, W, "EntityName")), text_of(child(target, W, "EntityId"))
    body = _retrieve(
        ctx,
        name,
        rid,
        child(req, W, "ColumnSet"),
        dynamic=_dynamic_flag(req),
        tag="q1:BusinessEntity",
        xmlns=_Q1,
    )
    return f'<Response xsi:type="RetrieveResponse">{body}</Response>'


def _exec_retrieve_multiple(ctx: Context, req: etree._Element) -> str:
    query = parse_query(child(req, W, "Query"), ctx.metadata)
    page, more, cookie = run_page(query, ctx.store)
    body = render_collection(
        query, page, more, cookie, dynamic=_dynamic_flag(req), tag="q1:BusinessEntityCollection"
    )
    return f'<Response xsi:type="RetrieveMultipleResponse">{body}</Response>'


def _exec_who_am_i(ctx: Context, req: etree._Element) -> str:
    return (
        f'<Response xsi:type="WhoAmIResponse"><UserId>{ctx.user_id}</UserId><BusinessUnitId>'
        f"{ctx.business_unit_id}</BusinessUnitId><OrganizationId>{ctx.organization_id}</OrganizationId></Response>"
    )


_REQUESTS: dict[str, Callable[[Context, etree._Element], str]] = {
    "WhoAmIRequest": _exec_who_am_i,
    "CreateRequest": _exec_create,
    "UpdateRequest": _exec_update,
    "DeleteRequest": _exec_delete,
    "RetrieveRequest": _exec_retrieve,
    "RetrieveMultipleRequest": _exec_retrieve_multiple,
}


def op_execute(ctx: Context, el: etree._Element) -> str:
    """Execute: ``Execute/Request`` with ``xsi:type`` one of the supported requests."""
    req = child(el, W, "Request")
    qname = attr_qname(req) if req is not None else None
    handler = _REQUESTS.get(qname[1]) if qname is not None and qname[0] == W else None
    if req is None or handler is None:
        raise invalid(
            f"The Execute request type {qname[1] if qname else None!r} is not supported by this mock."
        )
    return f"<ExecuteResponse{_XMLNS}>{handler(ctx, req)}</ExecuteResponse>"


OPERATIONS: dict[str, Callable[[Context, etree._Element], str]] = {
    "Create": op_create,
    "Update": op_update,
    "Delete": op_delete,
    "Retrieve": op_retrieve,
    "RetrieveMultiple": op_retrieve_multiple,
    "Fetch": op_fetch,
    "Execute": op_execute,
}

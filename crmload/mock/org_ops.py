"""The mock's Organization service (2011+) operations: the direct ones and ``Execute`` with its messages.

Direct: Create, Update, Delete, Retrieve, RetrieveMultiple (elements in ``xrm/2011/Contracts/Services``).
Execute messages (dispatched on ``RequestName``, else the ``i:type``): Create, Update, Delete, Retrieve,
RetrieveMultiple, Upsert, WhoAmI and ExecuteMultiple (see ``org_batch``). Every message that runs is counted
in ``Call.tally`` (items by message), which the server turns into stats and the per-record execution cost.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lxml import etree

from crmload.metadata import EntityMeta, Metadata
from crmload.mock.entity import entity_meta, invalid, parse_guid
from crmload.mock.envelope import CODE_DUPLICATE, CODE_NOT_FOUND, SoapFault, attr_qname, child, text_of
from crmload.mock.org_query import parse_columns, parse_org_query, run_query
from crmload.mock.org_values import (
    OrgEntity,
    OrgRef,
    parameters,
    parse_entity,
    read_reference,
    render_entity_body,
    render_reference,
)
from crmload.mock.store import Dangling, Duplicate, DuplicateKey, Missing, Store, UnknownKey
from crmload.mock.values import Value
from crmload.soap import ns

__all__ = ["MESSAGES", "OPERATIONS", "Call", "OrgContext", "message_name", "run_message", "store_errors"]

A = ns.XRM2011
S = ns.XRM2011_SERVICES
#: Prefixes every response fragment binds on its top element (values and entities use them).
PREFIXES = (
    f'xmlns:a="{A}" xmlns:i="{ns.XSI}" xmlns:b="{ns.COLLECTIONS}" xmlns:c="{ns.XSD}" '
    f'xmlns:e="{ns.SERIALIZATION}" xmlns:g="{ns.CRM2011}" xmlns:l="{ns.XRM2012}"'
)
_KVP = "a:KeyValuePairOfstringanyType"


@dataclass(frozen=True, slots=True)
class OrgContext:
    """What every call shares: metadata, store, the org's fixed ids and the ExecuteMultiple limit."""

    metadata: Metadata
    store: Store
    business_unit_id: uuid.UUID
    organization_id: uuid.UUID
    max_batch_size: int = 1000


@dataclass(slots=True)
class Call:
    """One request's state: the caller's user id, the messages run (by name) and the batch size, if any."""

    ctx: OrgContext
    user_id: uuid.UUID
    tally: Counter[str] = field(default_factory=Counter)
    item_faults: Counter[str] = field(default_factory=Counter)
    batch_size: int | None = None

    def resolve(self, meta: EntityMeta, keys: dict[str, Value]) -> uuid.UUID:
        """Resolve alternate key values to the id of an existing record, or raise the CRM fault."""
        try:
            rid = self.ctx.store.find_by_key(meta.name, keys)
        except UnknownKey:
            raise invalid(
                f"The specified key attributes are not a defined key for the {meta.name} entity"
            ) from None
        if rid is None:
            raise SoapFault(
                CODE_NOT_FOUND,
                f"A record with the specified key values does not exist in {meta.name} entity",
                kind="not_found",
            )
        return rid


@contextlib.contextmanager
def store_errors(entity: str, rid: uuid.UUID | None) -> Iterator[None]:
    """Map the store's exceptions to the faults CRM answers with."""
    try:
        yield
    except Dangling as d:
        raise SoapFault(
            CODE_NOT_FOUND, f"{d.entity} With Id = {d.id} Does Not Exist", kind="not_found"
        ) from None
    except Missing:
        raise SoapFault(
            CODE_NOT_FOUND, f"{entity} With Id = {rid} Does Not Exist", kind="not_found"
        ) from None
    except DuplicateKey as dk:
        raise SoapFault(
            CODE_DUPLICATE,
            f"A record that has the attribute values of the entity key {dk.key} already exists.",
            kind="duplicate",
        ) from None
    except Duplicate:
        raise SoapFault(CODE_DUPLICATE, "Cannot insert duplicate key.", kind="duplicate") from None
    except UnknownKey:
        raise invalid(f"The specified key attributes are not a defined key for the {entity} entity") from None


def _entity(call: Call, el: etree._Element | None) -> OrgEntity:
    return parse_entity(el, call.ctx.metadata, call.resolve)


def _target_id(call: Call, meta: EntityMeta, rid: uuid.UUID | None, keys: dict[str, Value]) -> uuid.UUID:
    if rid is not None:
        return rid
    if not keys:
        raise invalid(f"The {meta.name} reference needs an Id or KeyAttributes.")
    return call.resolve(meta, keys)


def do_create(call: Call, ent: OrgEntity) -> uuid.UUID:
    """Create a record (keys sent as KeyAttributes are stored as attributes too)."""
    call.tally["Create"] += 1
    with store_errors(ent.meta.name, ent.id):
        return call.ctx.store.create(ent.meta.name, ent.meta.primary_key, {**ent.attrs, **ent.keys}, ent.id)


def do_update(call: Call, ent: OrgEntity) -> None:
    """Update the record named by the entity's Id or KeyAttributes."""
    call.tally["Update"] += 1
    rid = _target_id(call, ent.meta, ent.id, ent.keys)
    with store_errors(ent.meta.name, rid):
        call.ctx.store.update(ent.meta.name, rid, ent.attrs, ent.meta.primary_key)


def do_delete(call: Call, ref: OrgRef) -> None:
    """Delete the record named by the reference."""
    call.tally["Delete"] += 1
    rid = _target_id(call, ref.meta, ref.id, ref.keys)
    with store_errors(ref.meta.name, rid):
        call.ctx.store.delete(ref.meta.name, rid)


def do_retrieve(call: Call, ref: OrgRef, columns: etree._Element | None) -> str:
    """Return the children of the retrieved Entity."""
    call.tally["Retrieve"] += 1
    cols = parse_columns(columns, ref.meta)
    rid = _target_id(call, ref.meta, ref.id, ref.keys)
    with store_errors(ref.meta.name, rid):
        rec = call.ctx.store.get(ref.meta.name, rid)
    return render_entity_body(ref.meta, rec, cols)


def do_upsert(call: Call, ent: OrgEntity) -> tuple[uuid.UUID, bool]:
    """Upsert by Id, else by KeyAttributes: (id, created)."""
    call.tally["Upsert"] += 1
    if ent.id is None and not ent.keys:
        raise invalid(f"Upsert of '{ent.meta.name}' needs an Id or KeyAttributes.")
    with store_errors(ent.meta.name, ent.id):
        return call.ctx.store.upsert(ent.meta.name, ent.meta.primary_key, ent.attrs, ent.id, ent.keys)


# -- direct operations: body element -> response fragment ---


def _direct_ref(call: Call, el: etree._Element) -> OrgRef:
    meta = entity_meta(call.ctx.metadata, text_of(child(el, S, "entityName")))
    return OrgRef(meta=meta, id=parse_guid(text_of(child(el, S, "id")), "id"))


def op_create(call: Call, el: etree._Element) -> str:
    """Create/entity -> CreateResponse/CreateResult (guid)."""
    rid = do_create(call, _entity(call, child(el, S, "entity")))
    return f'<CreateResponse xmlns="{S}"><CreateResult>{rid}</CreateResult></CreateResponse>'


def op_update(call: Call, el: etree._Element) -> str:
    """Update/entity -> empty UpdateResponse."""
    do_update(call, _entity(call, child(el, S, "entity")))
    return f'<UpdateResponse xmlns="{S}"/>'


def op_delete(call: Call, el: etree._Element) -> str:
    """Delete/{entityName, id} -> empty DeleteResponse."""
    do_delete(call, _direct_ref(call, el))
    return f'<DeleteResponse xmlns="{S}"/>'


def op_retrieve(call: Call, el: etree._Element) -> str:
    """Retrieve/{entityName, id, columnSet} -> RetrieveResponse/RetrieveResult (an Entity)."""
    body = do_retrieve(call, _direct_ref(call, el), child(el, S, "columnSet"))
    return (
        f'<RetrieveResponse xmlns="{S}"><RetrieveResult {PREFIXES}>{body}</RetrieveResult></RetrieveResponse>'
    )


def op_retrieve_multiple(call: Call, el: etree._Element) -> str:
    """RetrieveMultiple/query -> RetrieveMultipleResponse/RetrieveMultipleResult (an EntityCollection)."""
    call.tally["RetrieveMultiple"] += 1
    query, total = parse_org_query(child(el, S, "query"), call.ctx.metadata)
    body = run_query(query, total, call.ctx.store)
    return (
        f'<RetrieveMultipleResponse xmlns="{S}"><RetrieveMultipleResult {PREFIXES}>{body}'
        "</RetrieveMultipleResult></RetrieveMultipleResponse>"
    )


def op_execute(call: Call, el: etree._Element) -> str:
    """Execute/request -> ExecuteResponse/ExecuteResult of the message's response type."""
    req = child(el, S, "request")
    if req is None:
        raise invalid("Required element 'request' is missing.")
    rtype, name, results = run_message(call, req, nested=False)
    return (
        f'<ExecuteResponse xmlns="{S}"><ExecuteResult i:type="{rtype}" {PREFIXES}>'
        f"<a:ResponseName>{name}</a:ResponseName><a:Results>{results}</a:Results></ExecuteResult></ExecuteResponse>"
    )


# -- Execute messages: params -> (response i:type, Results children) ---


def _kv(key: str, value: str) -> str:
    return f"<{_KVP}><b:key>{key}</b:key>{value}</{_KVP}>"


def _target(params: dict[str, etree._Element | None], kind: str) -> etree._Element:
    target = params.get("Target")
    if target is None or attr_qname(target) != (A, kind):
        raise invalid(f"The Target parameter must be an {kind}.")
    return target


def msg_create(call: Call, params: dict[str, etree._Element | None]) -> str:
    """CreateRequest(Target Entity) -> Results id."""
    rid = do_create(call, _entity(call, _target(params, "Entity")))
    return _kv("id", f'<b:value i:type="e:guid">{rid}</b:value>')


def msg_update(call: Call, params: dict[str, etree._Element | None]) -> str:
    """UpdateRequest(Target Entity) -> no results."""
    do_update(call, _entity(call, _target(params, "Entity")))
    return ""


def msg_delete(call: Call, params: dict[str, etree._Element | None]) -> str:
    """DeleteRequest(Target EntityReference) -> no results."""
    do_delete(call, read_reference(_target(params, "EntityReference"), call.ctx.metadata))
    return ""


def msg_retrieve(call: Call, params: dict[str, etree._Element | None]) -> str:
    """RetrieveRequest(Target EntityReference, ColumnSet) -> Results Entity."""
    ref = read_reference(_target(params, "EntityReference"), call.ctx.metadata)
    body = do_retrieve(call, ref, params.get("ColumnSet"))
    return _kv("Entity", f'<b:value i:type="a:Entity">{body}</b:value>')


def msg_retrieve_multiple(call: Call, params: dict[str, etree._Element | None]) -> str:
    """RetrieveMultipleRequest(Query) -> Results EntityCollection."""
    call.tally["RetrieveMultiple"] += 1
    query, total = parse_org_query(params.get("Query"), call.ctx.metadata)
    return _kv(
        "EntityCollection",
        f'<b:value i:type="a:EntityCollection">{run_query(query, total, call.ctx.store)}</b:value>',
    )


def msg_upsert(call: Call, params: dict[str, etree._Element | None]) -> str:
    """UpsertRequest(Target Entity with Id or KeyAttributes) -> Results RecordCreated, Target."""
    ent = _entity(call, _target(params, "Entity"))
    rid, created = do_upsert(call, ent)
    return _kv(
        "RecordCreated", f'<b:value i:type="c:boolean">{"true" if created else "false"}</b:value>'
    ) + _kv("Target", f'<b:value i:type="a:EntityReference">{render_reference(ent.meta.name, rid)}</b:value>')


def msg_who_am_i(call: Call, params: dict[str, etree._Element | None]) -> str:
    """WhoAmIRequest -> Results UserId, BusinessUnitId, OrganizationId."""
    call.tally["WhoAmI"] += 1
    ctx = call.ctx
    ids = (
        ("UserId", call.user_id),
        ("BusinessUnitId", ctx.business_unit_id),
        ("OrganizationId", ctx.organization_id),
    )
    return "".join(_kv(k, f'<b:value i:type="e:guid">{v}</b:value>') for k, v in ids)


Message = Callable[[Call, dict[str, etree._Element | None]], str]
MESSAGES: dict[str, tuple[str, Message]] = {
    "Create": ("a:CreateResponse", msg_create),
    "Update": ("a:UpdateResponse", msg_update),
    "Delete": ("a:DeleteResponse", msg_delete),
    "Retrieve": ("a:RetrieveResponse", msg_retrieve),
    "RetrieveMultiple": ("a:RetrieveMultipleResponse", msg_retrieve_multiple),
    "Upsert": ("a:UpsertResponse", msg_upsert),
    "WhoAmI": ("g:WhoAmIResponse", msg_who_am_i),
}


def message_name(req: etree._Element) -> str:
    """Return a request's message name: its RequestName, else its ``i:type`` without ``Request``."""
    name = (text_of(child(req, A, "RequestName")) or "").strip()
    if name:
        return name
    qname = attr_qname(req)
    if qname is not None and qname[0] in (A, ns.CRM2011) and qname[1].endswith("Request"):
        return qname[1][: -len("Request")]
    return ""


def run_message(call: Call, req: etree._Element, *, nested: bool) -> tuple[str, str, str]:
    """Run one OrganizationRequest: (response i:type, ResponseName, Results children)."""
    name = message_name(req)
    if name == "ExecuteMultiple":
        if nested:
            raise invalid("ExecuteMultipleRequest cannot be used inside another ExecuteMultipleRequest.")
        from crmload.mock.org_batch import execute_multiple  # noqa: PLC0415 - org_batch imports this module

        return "a:ExecuteMultipleResponse", name, execute_multiple(call, parameters(req))
    if name not in MESSAGES:
        raise invalid(
            f"The request '{name or req.get(ns.qn(ns.XSI, 'type'))}' is not supported by this mock."
        )
    rtype, handler = MESSAGES[name]
    return rtype, name, handler(call, parameters(req))


OPERATIONS: dict[str, Callable[[Call, etree._Element], str]] = {
    "Create": op_create,
    "Update": op_update,
    "Delete": op_delete,
    "Retrieve": op_retrieve,
    "RetrieveMultiple": op_retrieve_multiple,
    "Execute": op_execute,
}

"""Pieces of Organization-service messages: request fragments, and the items of a batch answer.

``codec2011`` assembles envelopes from these; they are pure string and tree functions with no state. The
prefixes are the envelope's (see ``codec2011``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from lxml import etree

from crmload.batch import (
    BatchRequest,
    BatchResult,
    CreateRequest,
    DeleteRequest,
    UpdateRequest,
    UpsertRequest,
)
from crmload.errors import ConfigError, CrmLoadError, ItemNotRunError, ProtocolError
from crmload.soap import faults, faults2011
from crmload.soap.codec2007 import _entity_name, _id
from crmload.soap.ns import COLLECTIONS, XRM2011, XRM2012, XSI
from crmload.soap.values import check_name
from crmload.soap.values2011 import decode_pairs, encode_attributes, encode_key_attributes
from crmload.soap.values2011 import encode_value as _encode_value
from crmload.types import AltKey, Key, Lookup, Money, MultiPicklist, Picklist, Status

__all__ = [
    "UpsertResult",
    "column_set",
    "condition",
    "entity_of",
    "entity_xml",
    "fill_missing",
    "item_result",
    "organization_request",
    "page_fetch",
    "parse_items",
    "response_items",
    "target",
    "upsert_result",
]

_A = "{" + XRM2011 + "}"
_L = "{" + XRM2012 + "}"
_NIL = "{" + XSI + "}nil"
NO_ID = '</a:Parameters><a:RequestId i:nil="true"/><a:RequestName>'


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What an Upsert did: ``created`` True for a create, False for an update; ``id`` of the record."""

    created: bool
    id: UUID | None


def entity_xml(entity: str, attrs: Mapping[str, object], ident: str | None, keys: str = "") -> str:
    """The children of an ``Entity`` in DataContract order: Attributes, Id, KeyAttributes, LogicalName."""
    parts = ["<a:Attributes>"]
    encode_attributes(attrs, parts)
    parts.append("</a:Attributes>")
    if ident is not None:
        parts.append(f"<a:Id>{ident}</a:Id>")
    parts.append(f"{keys}<a:LogicalName>{entity}</a:LogicalName>")
    return "".join(parts)


def entity_of(request: CreateRequest | UpdateRequest | UpsertRequest) -> str:
    """The children of the ``Entity`` a Create, Update or Upsert carries (its Id, keys and attributes)."""
    name = _entity_name(request.entity)
    if isinstance(request, UpdateRequest):
        attrs = {k: v for k, v in request.attrs.items() if k != name + "id"}
        return entity_xml(name, attrs, _id(request.id))
    ident = _id(request.id) if request.id is not None else None
    if ident is not None and name + "id" in request.attrs:
        raise ConfigError(f"{name}id given both as id= and as an attribute")
    keys = ""
    if isinstance(request, UpsertRequest):
        if request.keys:
            keys = encode_key_attributes(request.keys, name)
        elif ident is None:
            raise ConfigError("an Upsert needs an id or alternate keys to find its record")
    return entity_xml(name, request.attrs, ident, keys)


def target(request: BatchRequest) -> str:
    """``<a:KeyValuePairOfstringanyType>`` Target of a Create/Update/Delete/Upsert request (left open)."""
    if isinstance(request, DeleteRequest):
        name = _entity_name(request.entity)
        value = f'a:EntityReference"><a:Id>{_id(request.id)}</a:Id><a:LogicalName>{name}</a:LogicalName>'
    else:
        value = 'a:Entity">' + entity_of(request)
    return f'<a:KeyValuePairOfstringanyType><b:key>Target</b:key><b:value i:type="{value}</b:value>'


def organization_request(tag: str, request: BatchRequest) -> str:
    op = request.name
    return (
        f'<{tag} i:type="a:{op}Request"><a:Parameters>{target(request)}'
        f"</a:KeyValuePairOfstringanyType>{NO_ID}{op}</a:RequestName></{tag}>"
    )


def column_set(tag: str, columns: Sequence[str] | None) -> str:
    if columns is None:
        return f"<{tag}><a:AllColumns>true</a:AllColumns></{tag}>"
    if isinstance(columns, str):
        raise ConfigError("columns must be a list of attribute names, not one string")
    names = "".join(f"<r:string>{check_name(c)}</r:string>" for c in columns)
    return f"<{tag}><a:AllColumns>false</a:AllColumns><a:Columns>{names}</a:Columns></{tag}>"


def condition(attr: str, value: object) -> str:
    if value is None:
        op, values = "Null", ""
    elif isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"{attr}: an In condition needs at least one value")
        op, values = "In", "".join(condition_value(v, attr) for v in value)
    else:
        op, values = "Equal", condition_value(value, attr)
    values_xml = f"<a:Values>{values}</a:Values>" if values else ""
    return (
        f"<a:ConditionExpression><a:AttributeName>{attr}</a:AttributeName>"
        f"<a:Operator>{op}</a:Operator>{values_xml}</a:ConditionExpression>"
    )


def condition_value(value: object, attr: str) -> str:
    """One ``<r:anyType i:type=...>`` of ArrayOfanyType: references compare by id, option sets by int."""
    plain: object = value
    if isinstance(value, (Lookup, Key)):
        plain = value.id
    elif isinstance(value, (Picklist, Status, Money)):
        plain = value.value
    elif isinstance(value, (AltKey, MultiPicklist)) or value is None:
        raise ConfigError(f"{attr}: cannot compare with a {type(value).__name__}")
    encoded = _encode_value(plain, attr)
    return "<r:anyType " + encoded[len("<b:value ") : -len("</b:value>")] + "</r:anyType>"


def page_fetch(fetch_xml: str, page: int | None, count: int | None, cookie: str | None) -> str:
    try:
        root = etree.fromstring(fetch_xml.encode("utf-8"), faults.PARSER)
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"fetch_xml is not well-formed: {exc}") from None
    for attr, value in (("page", page), ("count", count), ("paging-cookie", cookie)):
        if value is not None:
            root.set(attr, str(value))
    return str(etree.tostring(root, encoding="unicode"))


def upsert_result(results: Mapping[str, Any]) -> UpsertResult:
    target = results.get("Target")
    ident = getattr(target, "id", target if isinstance(target, UUID) else None)
    return UpsertResult(created=bool(results.get("RecordCreated")), id=ident)


def response_items(result: etree._Element) -> list[etree._Element]:
    results = result.find(_A + "Results")
    for pair in results if results is not None else ():
        if (pair.findtext("{" + COLLECTIONS + "}key") or "") == "Responses":
            value = pair.find("{" + COLLECTIONS + "}value")
            return [] if value is None else [i for i in value if i.tag == _L + "ExecuteMultipleResponseItem"]
    raise ProtocolError("ExecuteMultipleResponse without Responses")


_FAULT, _INDEX, _RESPONSE = _L + "Fault", _L + "RequestIndex", _L + "Response"
_KEY, _VALUE = "{" + COLLECTIONS + "}key", "{" + COLLECTIONS + "}value"


def parse_items(items: list[etree._Element], requests: Sequence[BatchRequest]) -> dict[int, BatchResult]:
    """Return each answered item's result by its RequestIndex; one pass over each item's children.

    This runs once per record of a batch, so it walks children by tag instead of lxml path searches.
    """
    answered: dict[int, BatchResult] = {}
    for item in items:
        fault = index = response = None
        for child in item:
            tag = child.tag
            if tag == _INDEX:
                index = (child.text or "").strip()
            elif tag == _FAULT:
                fault = child if child.get(_NIL) != "true" else None
            elif tag == _RESPONSE:
                response = child if child.get(_NIL) != "true" else None
        if index is None or not index.isdigit() or int(index) >= len(requests):
            raise ProtocolError(f"ExecuteMultiple item with a bad RequestIndex {str(index)[:20]!r}")
        number = int(index)
        if fault is not None:
            answered[number] = faults2011.error_from_org_fault(fault)
        else:
            answered[number] = item_result(response, requests[number])
    return answered


def _created_id(results: etree._Element) -> UUID | None:
    for pair in results:
        if len(pair) == 2 and pair[0].tag == _KEY and pair[0].text == "id" and pair[1].tag == _VALUE:
            try:
                return UUID((pair[1].text or "").strip())
            except ValueError:
                raise ProtocolError(
                    f"CreateResponse id is not a GUID: {(pair[1].text or '')[:60]!r}"
                ) from None
    return None


def item_result(response: etree._Element | None, request: BatchRequest) -> BatchResult:
    """The result of one item that did not fault: a create's or upsert's id, else None."""
    results = response.find(_A + "Results") if response is not None else None
    if isinstance(request, CreateRequest):
        value = _created_id(results) if results is not None else None
        value = value or request.id
        if value is None:
            raise ProtocolError("CreateResponse item without an id")
        return value
    if isinstance(request, UpsertRequest):
        pairs = decode_pairs(results) if results is not None else {}
        return upsert_result(pairs).id or request.id
    return None


def fill_missing(
    answered: dict[int, BatchResult],
    requests: Sequence[BatchRequest],
    continue_on_error: bool,
    return_responses: bool,
) -> list[BatchResult]:
    stop = None
    if not continue_on_error:
        stop = min((i for i, r in answered.items() if isinstance(r, CrmLoadError)), default=None)
    out: list[BatchResult] = []
    for index, request in enumerate(requests):
        if index in answered:
            out.append(answered[index])
        elif (stop is not None and index > stop) or return_responses:
            out.append(ItemNotRunError(f"item {index} was not run: the batch stopped before it"))
        else:
            out.append(getattr(request, "id", None) if request.name in ("Create", "Upsert") else None)
    return out

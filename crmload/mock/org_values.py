"""Organization service (2011+) values for the mock: read ``Entity``/``EntityReference``/attribute values from
a request, check them against the metadata, and render stored records back as 2011 ``Entity`` XML.

The store holds the CRM 4.0 typed ``Value`` (the metadata's type names), so a record written through either
endpoint reads back the same through the other. Wire types and the CRM types they may carry:

=================================  ===========================================
``i:type``                         CRM types (metadata)
=================================  ===========================================
xs:string                          String, EntityNameReference, State, PartyList
xs:int / xs:double / xs:decimal    CrmNumber / CrmFloat / CrmDecimal
xs:boolean / xs:dateTime           CrmBoolean / CrmDateTime (kept as sent)
OptionSetValueCollection (9.0)     MultiPicklist
ser:guid                           UniqueIdentifier, Key
a:OptionSetValue                   Picklist, Status, State
a:Money                            CrmMoney
a:EntityReference                  Lookup, Customer, Owner (Id, or KeyAttributes resolved in the store)
``i:nil="true"``                   any (null)
=================================  ===========================================
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from crmload.limits import check
from crmload.metadata import EntityMeta, Metadata
from crmload.mock.entity import _over_limit as over_limit
from crmload.mock.entity import entity_meta, invalid, parse_guid
from crmload.mock.envelope import attr_qname, child, text_of
from crmload.mock.values import BadValue, Value, convert
from crmload.soap import ns

__all__ = [
    "KeyResolver",
    "OrgEntity",
    "OrgRef",
    "parse_entity",
    "parse_reference",
    "render_attributes",
    "render_entity_body",
    "render_reference",
]

A = ns.XRM2011
_NIL = ns.qn(ns.XSI, "nil")
_EMPTY = uuid.UUID(int=0)
_KVP = "KeyValuePairOfstringanyType"
_KVP_TAGS = frozenset({ns.qn(ns.XRM2011, _KVP), ns.qn(ns.XRM71, _KVP)})
_KEY_TAG = ns.qn(ns.COLLECTIONS, "key")
_VALUE_TAG = ns.qn(ns.COLLECTIONS, "value")
_OPTION_TAGS = (ns.qn(ns.XRM90, "OptionSetValue"), ns.qn(ns.XRM2011, "OptionSetValue"))
_OPTION_VALUE = ns.qn(ns.XRM2011, "Value")
_ENTITY_PARTS = {ns.qn(ns.XRM2011, n): n for n in ("Attributes", "Id", "KeyAttributes", "LogicalName")}

_WIRE: dict[tuple[str, str], frozenset[str]] = {
    (ns.XSD, "string"): frozenset({"String", "EntityNameReference", "State", "PartyList"}),
    (ns.XSD, "int"): frozenset({"CrmNumber"}),
    (ns.XSD, "double"): frozenset({"CrmFloat"}),
    (ns.XSD, "decimal"): frozenset({"CrmDecimal"}),
    (ns.XSD, "boolean"): frozenset({"CrmBoolean"}),
    (ns.XSD, "dateTime"): frozenset({"CrmDateTime"}),
    (ns.SERIALIZATION, "guid"): frozenset({"UniqueIdentifier", "Key"}),
    (A, "OptionSetValue"): frozenset({"Picklist", "Status", "State"}),
    (A, "Money"): frozenset({"CrmMoney"}),
    (A, "EntityReference"): frozenset({"Lookup", "Customer", "Owner"}),
    (ns.XRM90, "OptionSetValueCollection"): frozenset({"MultiPicklist"}),
}

#: Resolves (entity, key attribute values) to the id of an existing record, or raises the fault.
KeyResolver = Callable[[EntityMeta, dict[str, Value]], uuid.UUID]


@dataclass(slots=True)
class OrgEntity:
    """An ``Entity`` read from a request: metadata, typed attributes, id (None when empty), key attributes."""

    meta: EntityMeta
    attrs: dict[str, Value]
    id: uuid.UUID | None
    keys: dict[str, Value] = field(default_factory=dict)


@dataclass(slots=True)
class OrgRef:
    """An ``EntityReference``: the target's metadata, id (None when empty) and key attributes."""

    meta: EntityMeta
    id: uuid.UUID | None
    keys: dict[str, Value] = field(default_factory=dict)


def _is_nil(el: etree._Element) -> bool:
    return (el.get(_NIL) or "").strip().lower() in ("true", "1")


def _pairs(parent: etree._Element | None) -> list[tuple[str, etree._Element | None]]:
    """Return (key, value element) of each KeyValuePairOfstringanyType child, matched by namespace."""
    out: list[tuple[str, etree._Element | None]] = []
    if parent is None:
        return out
    # One pass over the children by tag comparison: this runs for every attribute of every batch item.
    for kvp in parent.iterchildren(tag=etree.Element):
        if kvp.tag not in _KVP_TAGS:
            raise invalid(f"Unexpected element {kvp.tag!r} in {etree.QName(parent).localname}.")
        key: str | None = None
        value: etree._Element | None = None
        for part in kvp.iterchildren(_KEY_TAG, _VALUE_TAG):
            if part.tag == _KEY_TAG:
                key = part.text
            elif value is None:
                value = part
        if not key:
            raise invalid(f"A {_KVP} in {etree.QName(parent).localname} has no key.")
        out.append((key.strip(), value))
    return out


def parameters(el: etree._Element | None) -> dict[str, etree._Element | None]:
    """Return an OrganizationRequest's ``Parameters`` as key -> value element."""
    return dict(_pairs(child(el, A, "Parameters") if el is not None else None))


def _guid_or_none(text: str | None, what: str) -> uuid.UUID | None:
    if text is None or not text.strip():
        return None
    rid = parse_guid(text, what)
    return None if rid == _EMPTY else rid


def _typed(
    metadata: Metadata,
    meta: EntityMeta,
    name: str,
    value_el: etree._Element | None,
    resolve: KeyResolver | None,
) -> Value:
    declared = meta.type_of(name)
    if declared is None:
        raise invalid(f"'{meta.name}' entity doesn't contain attribute with Name = '{name}'.")
    if value_el is None or _is_nil(value_el):
        return Value(declared, None)
    wire = attr_qname(value_el)
    allowed = _WIRE.get(wire) if wire is not None else None
    if wire is None or allowed is None or declared not in allowed:
        sent = wire[1] if wire else None
        raise invalid(
            f"Incorrect type of attribute value {sent!r} for '{name}' of '{meta.name}' ({declared})."
        )
    if wire == (A, "EntityReference"):
        entity, rid = parse_reference(value_el, metadata, resolve)
        return Value(declared, rid, entity)
    text: str | None
    if wire[1] == "OptionSetValueCollection":
        # Items are OptionSetValue elements (9.0 or 2011 namespace, as clients differ) holding a Value.
        text = ",".join(
            (o.findtext(_OPTION_VALUE) or "").strip() for o in value_el.iterchildren(*_OPTION_TAGS)
        )
    else:
        text = text_of(child(value_el, A, "Value")) if wire[0] == A else value_el.text or ""
    if text is None:
        raise invalid(f"The {wire[1]} of '{name}' has no Value.")
    # A 2011 state is an option value (2007 sends its label): keep the int.
    state = declared == "State" and wire == (A, "OptionSetValue")
    try:
        v = convert("CrmNumber" if state else declared, text)
    except BadValue as exc:
        raise invalid(f"Invalid value for attribute '{name}' of '{meta.name}': {exc}") from None
    over = check(declared, meta.limits_of(name), v.value)
    if over is not None:
        raise over_limit(meta, name, declared, text, over)
    return Value("State", v.value) if state else v


def parse_reference(
    el: etree._Element, metadata: Metadata, resolve: KeyResolver | None
) -> tuple[str, uuid.UUID]:
    """Read an EntityReference as a lookup value: (target entity, id), resolving KeyAttributes."""
    ref = read_reference(el, metadata)
    if ref.id is not None:
        return ref.meta.name, ref.id
    if not ref.keys or resolve is None:
        raise invalid(f"The reference to '{ref.meta.name}' has neither an Id nor KeyAttributes.")
    return ref.meta.name, resolve(ref.meta, ref.keys)


def read_reference(el: etree._Element, metadata: Metadata) -> OrgRef:
    """Read an EntityReference (Id, LogicalName, KeyAttributes) without resolving it."""
    meta = entity_meta(metadata, text_of(child(el, A, "LogicalName")))
    rid = _guid_or_none(text_of(child(el, A, "Id")), "EntityReference Id")
    keys = _key_attributes(metadata, child(el, A, "KeyAttributes"), meta)
    return OrgRef(meta=meta, id=rid, keys=keys)


def _key_attributes(metadata: Metadata, el: etree._Element | None, meta: EntityMeta) -> dict[str, Value]:
    # A key attribute that is itself a lookup must carry an Id: no reference-by-key inside a key.
    return {name.lower(): _typed(metadata, meta, name.lower(), v, None) for name, v in _pairs(el)}


def parse_entity(el: etree._Element | None, metadata: Metadata, resolve: KeyResolver) -> OrgEntity:
    """Read an ``Entity`` (Attributes, Id, KeyAttributes, LogicalName) against the metadata."""
    if el is None:
        raise invalid("Required element 'entity' is missing.")
    parts: dict[str, etree._Element] = {}
    for part in el.iterchildren(*_ENTITY_PARTS):
        parts.setdefault(_ENTITY_PARTS[part.tag], part)
    meta = entity_meta(metadata, text_of(parts.get("LogicalName")))
    attrs = {
        name.lower(): _typed(metadata, meta, name.lower(), value_el, resolve)
        for name, value_el in _pairs(parts.get("Attributes"))
    }
    rid = _guid_or_none(text_of(parts.get("Id")), "Entity Id")
    key = attrs.get(meta.primary_key)
    if rid is None and key is not None and isinstance(key.value, uuid.UUID):
        rid = key.value
    keys = _key_attributes(metadata, parts.get("KeyAttributes"), meta)
    return OrgEntity(meta=meta, attrs=attrs, id=rid, keys=keys)


# -- rendering (prefixes a = xrm/2011/Contracts, b = Collections.Generic, i = XSI, c = XSD, e = Serialization,
#    bound by the caller on an enclosing element) ---


_SCALAR: dict[str, tuple[str, Callable[[Any], str]]] = {
    "CrmNumber": ("c:int", str),
    "CrmFloat": ("c:double", lambda v: repr(float(v))),
    "CrmDecimal": ("c:decimal", lambda v: str(Decimal(v))),
    "CrmBoolean": ("c:boolean", lambda v: "true" if v else "false"),
    "CrmDateTime": ("c:dateTime", lambda v: str(v) if "T" in str(v) else f"{v}T00:00:00"),
    "Key": ("e:guid", str),
    "UniqueIdentifier": ("e:guid", str),
}


def _scalar(v: Value) -> tuple[str, str]:
    """Return (i:type, text) of a non-null scalar value (anything else is a string)."""
    wire, text = _SCALAR.get(v.type, ("c:string", lambda x: escape(str(x), {"\r": "&#13;"})))
    return wire, text(v.value)


def render_value(v: Value) -> str:
    """Render one non-null value as ``<b:value i:type=...>``."""
    t = v.type
    if t in ("Picklist", "Status") or (t == "State" and isinstance(v.value, int)):
        return f'<b:value i:type="a:OptionSetValue"><a:Value>{int(v.value)}</a:Value></b:value>'
    if t == "MultiPicklist":
        items = "".join(f"<h:OptionSetValue><a:Value>{int(o)}</a:Value></h:OptionSetValue>" for o in v.value)
        return f'<b:value i:type="h:OptionSetValueCollection" xmlns:h="{ns.XRM90}">{items}</b:value>'
    if t == "CrmMoney":
        return f'<b:value i:type="a:Money"><a:Value>{Decimal(v.value)}</a:Value></b:value>'
    if t in ("Lookup", "Customer", "Owner"):
        return f'<b:value i:type="a:EntityReference">{render_reference(v.ref or "", v.value)}</b:value>'
    wire, text = _scalar(v)
    return f'<b:value i:type="{wire}">{text}</b:value>'


def render_reference(entity: str, rid: uuid.UUID) -> str:
    """Render the children of an EntityReference."""
    return f'<a:Id>{rid}</a:Id><a:LogicalName>{escape(entity)}</a:LogicalName><a:Name i:nil="true"/>'


def render_attributes(items: list[tuple[str, Value]]) -> str:
    """Render ``a:Attributes`` children for the non-null values."""
    return "".join(
        f"<a:{_KVP}><b:key>{escape(n)}</b:key>{render_value(v)}</a:{_KVP}>"
        for n, v in items
        if v.value is not None
    )


def render_entity_body(meta: EntityMeta, rec: dict[str, Value], columns: list[str] | None) -> str:
    """Render the children of an ``Entity`` for a stored record (``columns=None`` means all)."""
    items = list(rec.items()) if columns is None else [(c, rec[c]) for c in columns if c in rec]
    key = rec.get(meta.primary_key)
    rid = key.value if key is not None else _EMPTY
    return (
        f'<a:Attributes>{render_attributes(items)}</a:Attributes><a:EntityState i:nil="true"/>'
        f"<a:FormattedValues/><a:Id>{rid}</a:Id><a:LogicalName>{meta.name}</a:LogicalName><a:RelatedEntities/>"
    )

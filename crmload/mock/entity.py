"""Read an entity from a request in either CRM 4.0 form and check it against the metadata table.

- ``DynamicEntity``: ``<entity xsi:type="q1:DynamicEntity" Name="contact"><q1:Properties><q1:Property
  xsi:type="q1:StringProperty" Name="firstname"><q1:Value>...`` with q1 = ``crm/2006/WebServices``.
- Strongly typed: ``<entity xsi:type="account"><name>...</name><parentaccountid
type="account">GUID</...>``, with
  the type and children in ``crm/2007/WebServices``; each value's CRM type comes from the metadata.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lxml import etree

from crmload.limits import check
from crmload.metadata import EntityMeta, Metadata
from crmload.mock.envelope import CODE_INVALID, CODE_STRING_TOO_LONG, SoapFault, attr_qname, child
from crmload.mock.values import PROPERTY_TYPES, BadValue, Value, convert
from crmload.soap import ns

__all__ = ["ParsedEntity", "entity_meta", "parse_entity", "parse_guid"]

_DYNAMIC = (ns.WS2006, "DynamicEntity")
_PROPERTY = ns.qn(ns.WS2006, "Property")
_VALUE = ns.qn(ns.WS2006, "Value")


@dataclass(slots=True)
class ParsedEntity:
    """An entity read from a request: its metadata, typed attributes, and the primary key if one was given."""

    meta: EntityMeta
    attrs: dict[str, Value]
    id: uuid.UUID | None


def invalid(description: str) -> SoapFault:
    """Return the InvalidArgument fault the mock uses for every bad entity, attribute or value."""
    return SoapFault(CODE_INVALID, description, kind="invalid_argument")


def entity_meta(metadata: Metadata, name: str | None) -> EntityMeta:
    """Return the metadata of entity ``name`` or raise the CRM fault for an unknown entity."""
    key = (name or "").strip().lower()
    if not metadata.has(key):
        raise invalid(f"The entity with a name = '{name}' was not found in the MetadataCache.")
    return metadata.entity(key)


def parse_guid(text: str | None, what: str) -> uuid.UUID:
    """Parse a GUID (braces and case ignored) or raise InvalidArgument naming ``what``."""
    try:
        return uuid.UUID((text or "").strip().strip("{}"))
    except ValueError:
        raise invalid(f"Invalid {what}: '{text}' is not a valid Guid.") from None


def _checked(meta: EntityMeta, name: str, sent_type: str | None, text: str | None, ref: str | None) -> Value:
    declared = meta.type_of(name)
    if declared is None:
        raise invalid(f"'{meta.name}' entity doesn't contain attribute with Name = '{name}'.")
    if sent_type is not None and sent_type != declared:
        raise invalid(f"Attribute '{name}' of '{meta.name}' is a {declared}, not a {sent_type}.")
    try:
        value = convert(declared, text, ref)
    except BadValue as exc:
        raise invalid(f"Invalid value for attribute '{name}' of '{meta.name}': {exc}") from None
    over = check(declared, meta.limits_of(name), value.value)
    if over is not None:
        raise _over_limit(meta, name, declared, text, over)
    return value


def _over_limit(meta: EntityMeta, name: str, crm_type: str, text: str | None, reason: str) -> SoapFault:
    """The fault CRM answers for a value over its attribute's limit, naming the attribute."""
    limits = meta.limits_of(name)
    if crm_type == "String" and limits is not None:
        # StringLengthTooLong, with CRM's own wording (seen in captured Dataverse answers).
        return SoapFault(
            CODE_STRING_TOO_LONG,
            f"A validation error occurred. The length of the '{name}' attribute of the '{meta.name}' entity "
            f"exceeded the maximum allowed length of '{limits.max_length}'.",
            kind="string_too_long",
        )
    shown = (text or "")[:64]
    return invalid(
        f"A validation error occurred. The value '{shown}' of '{name}' on record of type '{meta.name}' is "
        f"{reason}."
    )


def _value_text(value_el: etree._Element | None) -> tuple[str | None, str | None]:
    """Return (text or None for a null, lookup target entity) of a value element."""
    if value_el is None or (value_el.get("IsNull") or "").strip().lower() in ("true", "1"):
        return None, None
    return value_el.text or "", value_el.get("type")


def _parse_dynamic(el: etree._Element, metadata: Metadata) -> ParsedEntity:
    meta = entity_meta(metadata, el.get("Name"))
    attrs: dict[str, Value] = {}
    props = child(el, ns.WS2006, "Properties")
    for prop in props.iterchildren(_PROPERTY) if props is not None else ():
        name = (prop.get("Name") or "").strip().lower()
        qname = attr_qname(prop)
        if qname is None or qname[0] != ns.WS2006 or qname[1] not in PROPERTY_TYPES:
            raise invalid(
                f"Property '{name}' has an unknown or missing xsi:type {prop.get(ns.qn(ns.XSI, 'type'))!r}."
            )
        text, ref = _value_text(prop.find(_VALUE))
        attrs[name] = _checked(meta, name, PROPERTY_TYPES[qname[1]], text, ref)
    return _with_key(meta, attrs)


def _parse_typed(el: etree._Element, entity: str, metadata: Metadata) -> ParsedEntity:
    meta = entity_meta(metadata, entity)
    attrs: dict[str, Value] = {}
    for item in el.iterchildren(tag=etree.Element):
        qname = etree.QName(item)
        if qname.namespace != ns.WS2007:
            raise invalid(f"Element '{item.tag}' is not an attribute of '{meta.name}' (wrong namespace).")
        name = qname.localname.lower()
        text, ref = _value_text(item)
        attrs[name] = _checked(meta, name, None, text, ref)
    return _with_key(meta, attrs)


def _with_key(meta: EntityMeta, attrs: dict[str, Value]) -> ParsedEntity:
    key = attrs.get(meta.primary_key)
    rid = key.value if key is not None and isinstance(key.value, uuid.UUID) else None
    return ParsedEntity(meta=meta, attrs=attrs, id=rid)


def parse_entity(
    el: etree._Element | None, metadata: Metadata, *, dynamic_default: bool = False
) -> ParsedEntity:
    """Parse an ``entity``/``Entity`` element by its resolved ``xsi:type``.

    Args:
        dynamic_default: treat an element without ``xsi:type`` as a DynamicEntity (``Target*Dynamic/Entity``
            is declared as one, so clients such as zeep omit the type there).
    """
    if el is None:
        raise invalid("Required element 'entity' is missing.")
    qname = attr_qname(el)
    if qname == _DYNAMIC or (qname is None and dynamic_default):
        return _parse_dynamic(el, metadata)
    if qname is not None and qname[0] == ns.WS2007:
        return _parse_typed(el, qname[1], metadata)
    raise invalid(f"Cannot read an entity of type {el.get(ns.qn(ns.XSI, 'type'))!r}.")

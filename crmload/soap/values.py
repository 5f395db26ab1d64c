"""Python values to CRM 4.0 DynamicEntity properties and back: the hot path of the codec.

Encoding builds text from small templates with strict escaping; it never builds a tree. Decoding reads an
lxml element of an already parsed response. Prefixes used here (``q1`` for ``crm/2006/WebServices``, ``q2``
for ``crm/2006/Query``, ``q3`` for ``microsoft.com/wsdl/types``, ``xsi``, ``xsd``) are declared once on the
envelope by ``codec2007``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from lxml import etree

from crmload.errors import EncodingError, ProtocolError
from crmload.soap.ns import WS2006, XSI
from crmload.types import Customer, Key, Lookup, Money, Owner, Picklist, Status, is_name

__all__ = [
    "check_name",
    "decode_entity",
    "decode_property",
    "encode_condition_value",
    "encode_null",
    "encode_properties",
    "escape_attr",
    "escape_text",
    "xsi_type",
]

# XML 1.0 Char excludes C0 controls other than TAB/LF/CR, surrogates (lone ones cannot be encoded anyway) and
# U+FFFE/U+FFFF. One search over the string is cheaper than a translate table on the hot path.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XSI_TYPE = "{" + XSI + "}type"
_INT32 = (-(2**31), 2**31 - 1)


def _illegal(value: str, column: str) -> EncodingError:
    bad = _ILLEGAL.search(value)
    assert bad is not None
    char = bad.group()
    return EncodingError(
        f"{column}: U+{ord(char):04X} at offset {bad.start()} cannot be carried by XML 1.0",
        column=column,
        value=value[:80],
    )


def escape_text(value: str, column: str) -> str:
    """Escape ``value`` for element content; CR becomes ``&#13;`` so XML end-of-line handling keeps it."""
    if _ILLEGAL.search(value) is not None:
        raise _illegal(value, column)
    # ``]]>`` needs no special case: once ``>`` is escaped it cannot end anything.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def escape_attr(value: str, column: str) -> str:
    """Escape ``value`` for a double-quoted attribute; TAB/LF/CR as references, or normalisation eats them."""
    return escape_text(value, column).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")


def check_name(name: object, what: str = "attribute") -> str:
    """Return ``name`` if it is a safe CRM logical name, else raise EncodingError naming it."""
    if not is_name(name):
        shown = str(name)[:60]
        raise EncodingError(f"{what} name {shown!r} is not a CRM logical name", column=shown)
    return name  # type: ignore[return-value]


# --- encoding --------------------------------------------------------------------------------------------


def _int32(value: int, column: str) -> str:
    if not _INT32[0] <= value <= _INT32[1]:
        raise EncodingError(
            f"{column}: {value} does not fit CRM's 32-bit int", column=column, value=str(value)
        )
    return str(value)


def _decimal(value: Decimal, column: str) -> str:
    if not value.is_finite():
        raise EncodingError(f"{column}: {value} is not a finite decimal", column=column, value=str(value))
    # format 'f' never produces exponent notation, which xs:decimal does not allow.
    return format(value, "f")


def _float(value: float, column: str) -> str:
    if not math.isfinite(value):
        raise EncodingError(f"{column}: {value} is not a finite number", column=column, value=str(value))
    return repr(value)


def _datetime(value: datetime, column: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise EncodingError(
            f"{column}: datetime {value.isoformat()} has no time zone; CRM would read it as user-local time",
            column=column,
            value=value.isoformat(),
        )
    return value.isoformat()


def _prop(kind: str, name: str, inner: str, attrs: str = "") -> str:
    return (
        f'<q1:Property xsi:type="q1:{kind}" Name="{name}"><q1:Value{attrs}>{inner}</q1:Value></q1:Property>'
    )


def _lookup(kind: str) -> Callable[[Any, str], str]:
    def enc(v: Lookup, n: str) -> str:
        return _prop(kind, n, str(v.id), f' type="{v.entity}"')

    return enc


# None has no type of its own. CrmDateTime is the only IsNull-carrying value type whose content is a plain
# xs:string, so this is the one typed null that is valid against the WSDL; servers key nulls on IsNull.
_NULL = '<q1:Property xsi:type="q1:CrmDateTimeProperty" Name="{}"><q1:Value IsNull="true"/></q1:Property>'

# Exact-type dispatch: bool must never reach the int encoder, and a dict lookup beats an isinstance chain.
_ENCODERS: dict[type, Callable[[Any, str], str]] = {
    str: lambda v, n: _prop("StringProperty", n, escape_text(v, n)),
    bool: lambda v, n: _prop("CrmBooleanProperty", n, "true" if v else "false"),
    int: lambda v, n: _prop("CrmNumberProperty", n, _int32(v, n)),
    float: lambda v, n: _prop("CrmFloatProperty", n, _float(v, n)),
    Decimal: lambda v, n: _prop("CrmDecimalProperty", n, _decimal(v, n)),
    datetime: lambda v, n: _prop("CrmDateTimeProperty", n, _datetime(v, n)),
    type(None): lambda v, n: _NULL.format(n),
    UUID: lambda v, n: _prop("UniqueIdentifierProperty", n, str(v)),
    Lookup: _lookup("LookupProperty"),
    Customer: _lookup("CustomerProperty"),
    Owner: _lookup("OwnerProperty"),
    Picklist: lambda v, n: _prop("PicklistProperty", n, str(v.value)),
    Status: lambda v, n: _prop("StatusProperty", n, str(v.value)),
    Money: lambda v, n: _prop("CrmMoneyProperty", n, _decimal(v.value, n)),
    Key: lambda v, n: _prop("KeyProperty", n, str(v.id)),
}
# Subclasses (an IntEnum, a str subclass) resolve through the MRO once, in this order; bool before int.
_FALLBACK_ORDER = (bool, Customer, Owner, Lookup, int, str, float, Decimal, datetime, UUID)


def _encoder_for(value: object, column: str) -> Callable[[Any, str], str]:
    for base in _FALLBACK_ORDER:
        if isinstance(value, base):
            return _ENCODERS[base]
    raise EncodingError(
        f"{column}: a {type(value).__name__} has no CRM property type", column=column, value=repr(value)[:80]
    )


_checked_names: set[str] = set()
_NO_VALUE = frozenset({"StringProperty", "StateProperty"})


def encode_null(name: str, kind: str | None) -> str:
    """Return the null of property type ``kind`` (e.g. ``"PicklistProperty"``), or the untyped default.

    Servers check a property's type against the attribute's, nulls included, so a caller that knows the
    attribute type should say so. String values have no ``IsNull``; their null is a Property without Value.
    """
    if kind is None:
        return _NULL.format(name)
    if not is_name(kind):
        raise EncodingError(f"{name}: {kind[:40]!r} is not a property type name", column=name)
    if kind in _NO_VALUE:
        return f'<q1:Property xsi:type="q1:{kind}" Name="{name}"/>'
    return f'<q1:Property xsi:type="q1:{kind}" Name="{name}"><q1:Value IsNull="true"/></q1:Property>'


def encode_properties(
    attrs: Mapping[str, object],
    parts: list[str],
    null_kind: Callable[[str], str | None] | None = None,
) -> None:
    """Append one ``<q1:Property>`` per attribute to ``parts``; EncodingError names the bad attribute.

    ``null_kind(attribute)`` may name the property type to use for a None (see ``encode_null``).
    """
    for name, value in attrs.items():
        if name not in _checked_names:
            check_name(name)
            if len(_checked_names) < 4096:  # bounded: names come from schemas, not from data
                _checked_names.add(name)
        if value is None and null_kind is not None:
            parts.append(encode_null(name, null_kind(name)))
            continue
        enc = _ENCODERS.get(type(value))
        if enc is None:
            enc = _encoder_for(value, name)
        parts.append(enc(value, name))


_CONDITION_TYPES: dict[type, tuple[str, Callable[[Any, str], str]]] = {
    str: ("xsd:string", escape_text),
    bool: ("xsd:boolean", lambda v, n: "true" if v else "false"),
    int: ("xsd:int", _int32),
    float: ("xsd:double", _float),
    Decimal: ("xsd:decimal", _decimal),
    datetime: ("xsd:dateTime", _datetime),
    UUID: ("q3:guid", lambda v, n: str(v)),
    Lookup: ("q3:guid", lambda v, n: str(v.id)),
    Customer: ("q3:guid", lambda v, n: str(v.id)),
    Owner: ("q3:guid", lambda v, n: str(v.id)),
    Key: ("q3:guid", lambda v, n: str(v.id)),
    Picklist: ("xsd:int", lambda v, n: str(v.value)),
    Status: ("xsd:int", lambda v, n: str(v.value)),
    Money: ("xsd:decimal", lambda v, n: _decimal(v.value, n)),
}


def encode_condition_value(value: object, column: str) -> str:
    """Return one ``<q2:Value xsi:type=...>`` of a query condition (ArrayOfAnyType wants an explicit type)."""
    entry = _CONDITION_TYPES.get(type(value))
    if entry is None:
        for base in _FALLBACK_ORDER:
            if isinstance(value, base):
                entry = _CONDITION_TYPES[base]
                break
        else:
            raise EncodingError(
                f"{column}: cannot compare with a {type(value).__name__}",
                column=column,
                value=repr(value)[:80],
            )
    xtype, enc = entry
    return f'<q2:Value xsi:type="{xtype}">{enc(value, column)}</q2:Value>'


# --- decoding --------------------------------------------------------------------------------------------


def xsi_type(el: etree._Element) -> tuple[str | None, str] | None:
    """Return ``(namespace, local)`` of ``el``'s xsi:type, its prefix resolved through the nsmap."""
    raw = el.get(_XSI_TYPE)
    if raw is None:
        return None
    prefix, sep, local = raw.strip().rpartition(":")
    ns = el.nsmap.get(prefix if sep else None)
    return ns, local


def _parse_datetime(text: str) -> datetime:
    # fromisoformat on 3.10 does not take "Z".
    return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _bool(text: str) -> bool:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not an xs:boolean: {text!r}")


def _ref(cls: type[Lookup]) -> Callable[[str, etree._Element], Any]:
    def dec(text: str, value_el: etree._Element) -> Any:
        entity = value_el.get("type")
        # A reference whose entity the server left out still has a usable id.
        return cls(entity, UUID(text)) if entity else UUID(text)

    return dec


_DECODERS: dict[str, Callable[[str, etree._Element], Any]] = {
    "StringProperty": lambda t, e: t,
    "StateProperty": lambda t, e: t,
    "EntityNameReferenceProperty": lambda t, e: t,
    "CrmNumberProperty": lambda t, e: int(t),
    "CrmFloatProperty": lambda t, e: float(t),
    "CrmDecimalProperty": lambda t, e: Decimal(t),
    "CrmMoneyProperty": lambda t, e: Money(Decimal(t)),
    "CrmBooleanProperty": lambda t, e: _bool(t),
    "CrmDateTimeProperty": lambda t, e: _parse_datetime(t),
    "PicklistProperty": lambda t, e: Picklist(int(t)),
    "StatusProperty": lambda t, e: Status(int(t)),
    "LookupProperty": _ref(Lookup),
    "CustomerProperty": _ref(Customer),
    "OwnerProperty": _ref(Owner),
    "KeyProperty": lambda t, e: Key(UUID(t)),
    "UniqueIdentifierProperty": lambda t, e: UUID(t),
}
_VALUE = "{" + WS2006 + "}Value"
_NIL = "{" + XSI + "}nil"


def decode_property(prop: etree._Element) -> tuple[str, Any]:
    """Return ``(name, typed value)`` of one ``Property`` element; ProtocolError if it is malformed."""
    name = prop.get("Name")
    if not name:
        raise ProtocolError("Property without a Name attribute in the response")
    value_el = prop.find(_VALUE)
    if value_el is None:
        value_el = next(
            (c for c in prop if isinstance(c.tag, str) and etree.QName(c).localname == "Value"), None
        )
    if value_el is None or prop.get(_NIL) == "true" or value_el.get("IsNull") == "true":
        return name, None
    resolved = xsi_type(prop)
    kind = resolved[1] if resolved is not None else "StringProperty"
    text = value_el.text or ""
    if kind == "DynamicEntityArrayProperty":
        return name, [decode_entity(e) for e in value_el if isinstance(e.tag, str)]
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return name, text  # the long tail (e.g. CalendarRules) stays text rather than failing the record
    if kind != "StringProperty":
        text = text.strip()
    try:
        return name, decoder(text, value_el)
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise ProtocolError(f"{name}: {kind} value {text[:40]!r} does not parse: {exc}") from None


def decode_entity(entity: etree._Element) -> dict[str, Any]:
    """Return the attributes of a DynamicEntity, or of a strongly typed entity, as a dict of typed values.

    A strongly typed entity (``xsi:type="account"``, values as child elements) carries no property types, so
    its values come back as text, ``None`` for ``IsNull``, and ``Lookup`` where a ``type`` attribute names the
    entity.
    """
    record: dict[str, Any] = {}
    props = next(
        (c for c in entity if isinstance(c.tag, str) and etree.QName(c).localname == "Properties"), None
    )
    if props is not None:
        for prop in props:
            if isinstance(prop.tag, str):
                name, value = decode_property(prop)
                record[name] = value
        return record
    for child in entity:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        if child.get("IsNull") == "true" or child.get(_NIL) == "true":
            record[name] = None
        elif child.get("type") and is_name(child.get("type")):
            try:
                record[name] = Lookup(child.get("type", ""), UUID((child.text or "").strip()))
            except ValueError:
                record[name] = child.text or ""
        else:
            record[name] = child.text or ""
    return record

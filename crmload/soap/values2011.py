"""Python values to Organization-service (2011+) attribute values and back: the hot path of codec2011.

Every attribute is ``<a:KeyValuePairOfstringanyType><b:key>name</b:key><b:value i:type="...">``. Encoding
builds text from small templates with the strict escaping of ``values``; it never builds a tree. The prefixes
(``a`` xrm/2011/Contracts, ``b`` System.Collections.Generic, ``c`` XMLSchema, ``e`` Serialization, ``i``
XMLSchema-instance, ``o`` xrm/7.1, ``d`` xrm/9.0) are declared once on the envelope by ``codec2011``.
Decoding reads an lxml element of an already parsed response and resolves ``i:type`` prefixes through the
element's namespaces: prefixes are the server's choice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from lxml import etree

from crmload.errors import EncodingError, ProtocolError
from crmload.soap.ns import ARRAYS, COLLECTIONS, SERIALIZATION, XRM90, XRM2011, XSD, XSI
from crmload.soap.values import _decimal, _float, _int32, check_name, escape_text, xsi_type
from crmload.types import AltKey, Customer, Key, Lookup, Money, MultiPicklist, Owner, Picklist, Status

__all__ = [
    "EMPTY_GUID",
    "decode_entity",
    "decode_pairs",
    "decode_value",
    "encode_attributes",
    "encode_key_attributes",
    "encode_value",
    "utc_text",
]

EMPTY_GUID = UUID(int=0)
_KV = "<a:KeyValuePairOfstringanyType><b:key>"
_KV_END = "</b:value></a:KeyValuePairOfstringanyType>"
_UTC = timezone.utc


def utc_text(value: datetime, column: str) -> str:
    """Return an aware datetime as xs:dateTime in UTC (``...Z``); a naive one is an EncodingError."""
    offset = value.utcoffset() if value.tzinfo is not None else None
    if offset is None:
        raise EncodingError(
            f"{column}: datetime {value.isoformat()} has no time zone; CRM would read it as user-local time",
            column=column,
            value=value.isoformat(),
        )
    return value.astimezone(_UTC).replace(tzinfo=None).isoformat() + "Z"


def _ref(entity: str, inner: str) -> str:
    return f'i:type="a:EntityReference">{inner}<a:LogicalName>{entity}</a:LogicalName>'


def _lookup(v: Lookup, n: str) -> str:
    return _ref(v.entity, f"<a:Id>{v.id}</a:Id>")


def _alt_key(v: AltKey, n: str) -> str:
    return _ref(v.entity, encode_key_attributes(v.keys, n))


def _options(v: MultiPicklist, n: str) -> str:
    items = "".join(f"<d:OptionSetValue><a:Value>{x}</a:Value></d:OptionSetValue>" for x in v.values)
    return f'i:type="d:OptionSetValueCollection">{items}'


# Each encoder returns what follows ``<b:value `` up to (not including) ``</b:value>``.
# Exact-type dispatch: bool must never reach the int encoder, and a dict lookup beats an isinstance chain.
_ENCODERS: dict[type, Callable[[Any, str], str]] = {
    str: lambda v, n: 'i:type="c:string">' + escape_text(v, n),
    bool: lambda v, n: 'i:type="c:boolean">true' if v else 'i:type="c:boolean">false',
    int: lambda v, n: 'i:type="c:int">' + _int32(v, n),
    float: lambda v, n: 'i:type="c:double">' + _float(v, n),
    Decimal: lambda v, n: 'i:type="c:decimal">' + _decimal(v, n),
    datetime: lambda v, n: 'i:type="c:dateTime">' + utc_text(v, n),
    UUID: lambda v, n: f'i:type="e:guid">{v}',
    Key: lambda v, n: f'i:type="e:guid">{v.id}',
    Picklist: lambda v, n: f'i:type="a:OptionSetValue"><a:Value>{v.value}</a:Value>',
    Status: lambda v, n: f'i:type="a:OptionSetValue"><a:Value>{v.value}</a:Value>',
    Money: lambda v, n: f'i:type="a:Money"><a:Value>{_decimal(v.value, n)}</a:Value>',
    Lookup: _lookup,
    Customer: _lookup,
    Owner: _lookup,
    AltKey: _alt_key,
    MultiPicklist: _options,
}
# Subclasses (an IntEnum, a str subclass) resolve through the MRO once, in this order; bool before int.
_FALLBACK_ORDER = (bool, Lookup, int, str, float, Decimal, datetime, UUID)


def encode_value(value: object, column: str) -> str:
    """Return one complete ``<b:value ...>...</b:value>`` for ``value``; EncodingError names the column."""
    if value is None:
        return '<b:value i:nil="true"/>'
    enc = _ENCODERS.get(type(value))
    if enc is None:
        base = next((b for b in _FALLBACK_ORDER if isinstance(value, b)), None)
        if base is None:
            raise EncodingError(
                f"{column}: a {type(value).__name__} has no Organization-service type",
                column=column,
                value=repr(value)[:80],
            )
        enc = _ENCODERS[base]
    return "<b:value " + enc(value, column) + "</b:value>"


_checked_names: set[str] = set()


def _name(name: str) -> str:
    if name not in _checked_names:
        check_name(name)
        if len(_checked_names) < 4096:  # bounded: names come from schemas, not from data
            _checked_names.add(name)
    return name


def encode_attributes(attrs: Mapping[str, object], parts: list[str]) -> None:
    """Append one ``KeyValuePairOfstringanyType`` per attribute to ``parts`` (inside ``a:Attributes``)."""
    encoders = _ENCODERS
    for name, value in attrs.items():
        _name(name)
        enc = encoders.get(type(value)) if value is not None else None
        if enc is not None:  # the common case, inlined: one dict lookup and one call per attribute
            parts.append(f"{_KV}{name}</b:key><b:value {enc(value, name)}{_KV_END}")
        else:
            parts.append(f"{_KV}{name}</b:key>{encode_value(value, name)}</a:KeyValuePairOfstringanyType>")


def encode_key_attributes(keys: tuple[tuple[str, Any], ...] | Mapping[str, Any], column: str) -> str:
    """Return ``<a:KeyAttributes>`` (a 7.1 KeyAttributeCollection) for alternate-key pairs."""
    pairs = keys.items() if isinstance(keys, Mapping) else keys
    items = "".join(
        f"<o:KeyValuePairOfstringanyType><b:key>{_name(k)}</b:key>{encode_value(v, column + '.' + k)}"
        "</o:KeyValuePairOfstringanyType>"
        for k, v in pairs
    )
    if not items:
        raise EncodingError(f"{column}: an alternate key needs at least one attribute", column=column)
    return f"<a:KeyAttributes>{items}</a:KeyAttributes>"


# --- decoding --------------------------------------------------------------------------------------------

_A = "{" + XRM2011 + "}"
_NIL = "{" + XSI + "}nil"


def _bool(text: str) -> bool:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not an xs:boolean: {text!r}")


def _datetime(text: str) -> datetime:
    # fromisoformat on 3.10 takes neither "Z" nor 7 fractional digits (.NET ticks).
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + (rest[:digits] + "000000")[:6] + rest[digits:]
    value = datetime.fromisoformat(text)
    # The service sends UTC; a value without a zone is taken as UTC rather than as this host's local time.
    return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)


def _child_text(el: etree._Element, local: str) -> str | None:
    for c in el:
        if isinstance(c.tag, str) and etree.QName(c).localname == local:
            return None if c.get(_NIL) == "true" else (c.text or "").strip()
    return None


def _option(el: etree._Element, key: str | None) -> Picklist | Status:
    value = int(_child_text(el, "Value") or "")
    return Status(value) if key == "statuscode" else Picklist(value)


def _entity_reference(el: etree._Element, key: str | None) -> Lookup | AltKey | UUID:
    entity = _child_text(el, "LogicalName")
    raw_id = _child_text(el, "Id")
    ident = UUID(raw_id) if raw_id else EMPTY_GUID
    if ident == EMPTY_GUID:
        holder = next((c for c in el if isinstance(c.tag, str) and c.tag == _A + "KeyAttributes"), None)
        pairs = decode_pairs(holder) if holder is not None else {}
        if pairs and entity:
            return AltKey(entity, pairs)
    return Lookup(entity, ident) if entity else ident


def _aliased(el: etree._Element, key: str | None) -> Any:
    value = next((c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == "Value"), None)
    return None if value is None else decode_value(value, key)


_XSD_DECODERS: dict[str, Callable[[str], Any]] = {
    "string": lambda t: t,
    "int": int,
    "long": int,
    "double": float,
    "float": float,
    "decimal": Decimal,
    "boolean": _bool,
    "dateTime": _datetime,
}
_TYPED_DECODERS: dict[tuple[str | None, str], Callable[[etree._Element, str | None], Any]] = {
    (SERIALIZATION, "guid"): lambda e, k: UUID((e.text or "").strip()),
    (XRM2011, "OptionSetValue"): _option,
    (XRM2011, "Money"): lambda e, k: Money(Decimal(_child_text(e, "Value") or "")),
    (XRM2011, "EntityReference"): _entity_reference,
    (XRM2011, "AliasedValue"): _aliased,
    (XRM90, "OptionSetValueCollection"): lambda e, k: MultiPicklist(
        int(_child_text(o, "Value") or "") for o in e if isinstance(o.tag, str)
    ),
    (XRM2011, "EntityCollection"): lambda e, k: [
        decode_entity(x)
        for holder in e
        if isinstance(holder.tag, str) and etree.QName(holder).localname == "Entities"
        for x in holder
        if isinstance(x.tag, str)
    ],
    (XRM2011, "Entity"): lambda e, k: decode_entity(e),
    (ARRAYS, "ArrayOfstring"): lambda e, k: [c.text or "" for c in e if isinstance(c.tag, str)],
}


def decode_value(el: etree._Element, key: str | None = None) -> Any:
    """Return the typed Python value of one ``value`` element; ProtocolError if its text does not parse.

    A type crmload does not model (e.g. ``BooleanManagedProperty``) comes back as its text rather than
    failing the whole record.
    """
    if el.get(_NIL) == "true":
        return None
    resolved = xsi_type(el)
    if resolved is None:
        return el.text or ""
    ns, local = resolved
    try:
        if ns == XSD:
            decoder = _XSD_DECODERS.get(local)
            text = el.text or ""
            return decoder(text if local == "string" else text.strip()) if decoder else text
        typed = _TYPED_DECODERS.get((ns, local))
        return typed(el, key) if typed is not None else "".join(el.itertext())
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise ProtocolError(f"{key}: {local} value {(el.text or '')[:40]!r} does not parse: {exc}") from None


def decode_pairs(holder: etree._Element) -> dict[str, Any]:
    """Return a ``KeyValuePairOfstringanyType*`` collection (Attributes, Results, ErrorDetails) as a dict."""
    out: dict[str, Any] = {}
    for pair in holder:
        if not isinstance(pair.tag, str):
            continue
        key: str | None = None
        value_el = None
        for part in pair:
            if not isinstance(part.tag, str):
                continue
            if part.tag == "{" + COLLECTIONS + "}key":
                key = part.text or ""
            elif part.tag == "{" + COLLECTIONS + "}value":
                value_el = part
        if key is None:
            raise ProtocolError("KeyValuePairOfstringanyType without a key")
        out[key] = decode_value(value_el, key) if value_el is not None else None
    return out


def decode_entity(entity: etree._Element) -> dict[str, Any]:
    """Return an ``Entity``'s attributes as typed values, with ``<logicalname>id`` filled from ``Id``."""
    record: dict[str, Any] = {}
    ident = logical = None
    for child in entity:
        if not isinstance(child.tag, str):
            continue
        if child.tag == _A + "Attributes":
            record.update(decode_pairs(child))
        elif child.tag == _A + "Id":
            ident = (child.text or "").strip()
        elif child.tag == _A + "LogicalName":
            logical = (child.text or "").strip()
    if ident and logical:
        try:
            uid = UUID(ident)
        except ValueError:
            raise ProtocolError(f"Entity Id is not a GUID: {ident[:60]!r}") from None
        if uid != EMPTY_GUID:
            record.setdefault(logical + "id", uid)
    return record

"""Typed CRM 4.0 values as the mock stores them: parse from either entity form, render to either form, to
JSON.

A stored value is a ``Value(type, value, ref)``: ``type`` is the CRM type name of the metadata table,
``value`` the
Python value (None means null) and ``ref`` the target entity of a Lookup/Customer/Owner.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape, quoteattr

_CR = {"\r": "&#13;"}
_ZONED = re.compile(r"T.*(?:[Zz]|[+-]\d\d:\d\d)$")

__all__ = ["PROPERTY_TYPES", "BadValue", "Value", "convert", "render_dynamic", "render_typed", "to_json"]

#: DynamicEntity ``*Property`` xsi:type local name -> CRM type name.
PROPERTY_TYPES = {
    "StringProperty": "String",
    "CrmNumberProperty": "CrmNumber",
    "CrmFloatProperty": "CrmFloat",
    "CrmDecimalProperty": "CrmDecimal",
    "CrmMoneyProperty": "CrmMoney",
    "CrmBooleanProperty": "CrmBoolean",
    "CrmDateTimeProperty": "CrmDateTime",
    "LookupProperty": "Lookup",
    "CustomerProperty": "Customer",
    "OwnerProperty": "Owner",
    "PicklistProperty": "Picklist",
    "StatusProperty": "Status",
    "StateProperty": "State",
    "KeyProperty": "Key",
    "UniqueIdentifierProperty": "UniqueIdentifier",
    "EntityNameReferenceProperty": "EntityNameReference",
}
_PROPERTY_OF = {v: k for k, v in PROPERTY_TYPES.items()}
_REFS = frozenset({"Lookup", "Customer", "Owner"})
_GUIDS = frozenset({"Key", "UniqueIdentifier"}) | _REFS


class BadValue(ValueError):
    """A value that does not convert to its CRM type (the mock answers 0x80040203)."""


@dataclass(frozen=True, slots=True)
class Value:
    """One stored attribute value: CRM type, Python value (None = null), lookup target entity."""

    type: str
    value: Any
    ref: str | None = None


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise BadValue(f"'{text}' is not a valid boolean")


def convert(crm_type: str, text: str | None, ref: str | None = None) -> Value:  # noqa: PLR0911
    """Convert element text to a typed ``Value``; ``text=None`` is a null. Raises ``BadValue``."""
    if text is None:
        return Value(crm_type, None, ref)
    try:
        if crm_type in ("CrmNumber", "Picklist", "Status"):
            return Value(crm_type, int(text.strip()))
        if crm_type == "CrmFloat":
            number = float(text.strip())
            if not math.isfinite(number):
                raise BadValue(f"'{text}' is not a valid {crm_type}")
            return Value(crm_type, number)
        if crm_type in ("CrmDecimal", "CrmMoney"):
            dec = Decimal(text.strip())
            if not dec.is_finite():
                raise BadValue(f"'{text}' is not a valid {crm_type}")
            return Value(crm_type, dec)
        if crm_type == "CrmBoolean":
            return Value(crm_type, _bool(text))
        if crm_type == "MultiPicklist":  # the options, comma-separated (2011 sends a collection)
            return Value(crm_type, tuple(int(p) for p in text.split(",") if p.strip()))
        if crm_type in _GUIDS:
            return Value(crm_type, uuid.UUID(text.strip().strip("{}")), ref if crm_type in _REFS else None)
    except (ValueError, InvalidOperation) as exc:
        raise BadValue(f"'{text}' is not a valid {crm_type}") from exc
    if crm_type == "CrmDateTime":
        return Value(crm_type, utc_text(text))
    # String, CrmDateTime (a string in the CRM 4.0 schema), State, EntityNameReference, PartyList.
    return Value(crm_type, text)


def utc_text(text: str) -> str:
    """Return a date-time that carries a zone (``Z`` or ``+hh:mm``) as UTC ``...Z``, as CRM stores it; text
    without a zone (user-local in CRM 4.0) or that does not parse is kept as sent. So a record sent with an
    offset through 2007 and in UTC through 2011 is stored the same."""
    t = text.strip()
    if not _ZONED.search(t):
        return text
    try:
        when = datetime.fromisoformat(t[:-1] + "+00:00" if t[-1] in "Zz" else t)
    except ValueError:
        return text
    return when.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def to_json(v: Value) -> Any:
    """Return the JSON-able form used by ``/_mock/records``."""
    if v.value is None:
        return None
    if v.type in _REFS:
        return {"type": v.ref, "id": str(v.value)}
    if isinstance(v.value, (Decimal, uuid.UUID)):
        return str(v.value)
    if isinstance(v.value, tuple):
        return list(v.value)
    return v.value


def _text(v: Value) -> str:
    val = v.value
    if isinstance(val, bool):
        return "true" if val else "false"
    if isinstance(val, float):
        return repr(val)
    if isinstance(val, tuple):
        return ",".join(map(str, val))
    # A raw CR would be normalised to LF by the client's XML parser; a character reference survives.
    return escape(str(val), _CR)


def _value_attrs(v: Value) -> str:
    if v.value is None:
        return ' IsNull="true"'
    if v.type in _REFS and v.ref:
        return f" type={quoteattr(v.ref)}"
    return ""


def render_dynamic(name: str, v: Value, p: str) -> str:
    """Render one ``<p:Property xsi:type="p:XxxProperty" Name=...>`` element (``p`` = 2006 WebServices
    prefix)."""
    prop = _PROPERTY_OF.get(v.type, "StringProperty")
    if v.value is None:
        body = f"<{p}:Value{_value_attrs(v)} />"
    else:
        body = f"<{p}:Value{_value_attrs(v)}>{_text(v)}</{p}:Value>"
    return f'<{p}:Property xsi:type="{p}:{prop}" Name={quoteattr(name)}>{body}</{p}:Property>'


def render_typed(name: str, v: Value) -> str:
    """Render one strongly typed child element (default namespace = 2007 WebServices); nulls are omitted."""
    if v.value is None:
        return ""
    return f"<{name}{_value_attrs(v)}>{_text(v)}</{name}>"

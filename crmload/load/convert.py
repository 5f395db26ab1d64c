"""Text -> CRM value converters, one per CRM type; each raises ``ValueError`` with a reason a user can act on.

The mapping layer owns the choice of converter; this module only knows how to read one string. Converters take
the already-trimmed text and a ``ColumnSpec``-like options object.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from uuid import UUID

from crmload.load.keys import key_id
from crmload.types import Customer, Key, Lookup, Money, Owner, Picklist, Status

__all__ = ["CONVERTERS", "TYPE_ALIASES", "check_xml_text"]

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_INT = re.compile(r"[+-]?\d+")
_DEC = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
# Thousands separators are accepted only when they group exactly by three, so "1,5" is never read as 15.
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
_CURRENCY = "$€£¥"
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})
# Not in XML 1.0's Char production: C0 controls other than tab, LF and CR, and U+FFFE/U+FFFF.
_ENTITY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

#: Header and map type names -> CRM type names. CRM's own names are accepted too (case-insensitive).
TYPE_ALIASES: Mapping[str, str] = {
    "string": "String",
    "text": "String",
    "memo": "String",
    "int": "CrmNumber",
    "integer": "CrmNumber",
    "number": "CrmNumber",
    "float": "CrmFloat",
    "double": "CrmFloat",
    "decimal": "CrmDecimal",
    "money": "CrmMoney",
    "bool": "CrmBoolean",
    "boolean": "CrmBoolean",
    "date": "CrmDateTime",
    "datetime": "CrmDateTime",
    "picklist": "Picklist",
    "status": "Status",
    "state": "State",
    "uuid": "UniqueIdentifier",
    "guid": "UniqueIdentifier",
    "uniqueidentifier": "UniqueIdentifier",
    "key": "Key",
    "lookup": "Lookup",
    "customer": "Customer",
    "owner": "Owner",
    "entitynamereference": "EntityNameReference",
    "crmnumber": "CrmNumber",
    "crmfloat": "CrmFloat",
    "crmdecimal": "CrmDecimal",
    "crmmoney": "CrmMoney",
    "crmboolean": "CrmBoolean",
    "crmdatetime": "CrmDateTime",
}


class Options(Protocol):
    """What a converter may read from its column spec."""

    @property
    def target(self) -> str | None: ...
    @property
    def by_key(self) -> bool: ...
    @property
    def labels(self) -> Mapping[str, int]: ...
    @property
    def formats(self) -> tuple[str, ...]: ...
    @property
    def tz(self) -> tzinfo: ...


def check_xml_text(text: str) -> None:
    """Raise ValueError when ``text`` holds a character XML 1.0 cannot carry."""
    bad = _XML_BAD.search(text)
    if bad:
        raise ValueError(f"control character U+{ord(bad.group()):04X} cannot be sent in XML 1.0")


def _string(text: str, o: Options) -> str:
    check_xml_text(text)
    return text


def _integer(text: str, o: Options) -> int:
    if not _INT.fullmatch(text):
        raise ValueError("not a whole number")
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"out of range for CrmNumber ({INT_MIN}..{INT_MAX})")
    return value


def _float(text: str, o: Options) -> float:
    if not (_DEC.fullmatch(text) or re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", text)):
        raise ValueError("not a number")
    value = float(text)
    if math.isinf(value):  # "1e400" reads as inf, which CRM's double cannot hold
        raise ValueError("not a number CRM can hold (out of range)")
    return value


def _decimal_text(text: str) -> Decimal:
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    if not _DEC.fullmatch(text):
        raise ValueError("not a decimal number (use '.' for decimals, e.g. 1234.50)")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid text
        raise ValueError("not a decimal number") from exc


def _decimal(text: str, o: Options) -> Decimal:
    return _decimal_text(text)


def _money(text: str, o: Options) -> Money:
    stripped = text.strip(_CURRENCY).strip()
    if stripped.startswith("-"):
        stripped = "-" + stripped[1:].lstrip(_CURRENCY).strip()
    try:
        return Money(_decimal_text(stripped))
    except ValueError:
        raise ValueError("not an amount of money (e.g. 1234.50 or $1,234.50)") from None


def _boolean(text: str, o: Options) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("not a boolean (true/false, yes/no, 1/0)")


def _datetime(text: str, o: Options) -> datetime:
    value: datetime | None = None
    for fmt in o.formats:
        try:
            value = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if value is None and not o.formats:
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            value = None
    if value is None:
        wanted = (
            " or ".join(repr(f) for f in o.formats) if o.formats else "ISO 8601, e.g. 2024-03-31T14:00:00"
        )
        raise ValueError(f"not a date ({wanted})")
    return value if value.tzinfo is not None else value.replace(tzinfo=o.tz)


def _code(text: str, o: Options) -> int:
    if _INT.fullmatch(text):
        return _integer(text, o)
    if text in o.labels:
        return o.labels[text]
    folded = {k.casefold(): v for k, v in o.labels.items()}
    if text.casefold() in folded:
        return folded[text.casefold()]
    known = ", ".join(sorted(o.labels)[:8]) or "none defined: add labels in the map file"
    raise ValueError(f"unknown label (known: {known})")


def _picklist(text: str, o: Options) -> Picklist:
    return Picklist(_code(text, o))


def _status(text: str, o: Options) -> Status:
    return Status(_code(text, o))


def _uuid(text: str, o: Options) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise ValueError("not a GUID") from None


def _reference(cls: type[Lookup]) -> Callable[[str, Options], Lookup]:
    def convert(text: str, o: Options) -> Lookup:
        assert o.target is not None
        if o.by_key:
            return cls(o.target, key_id(o.target, text))
        target, sep, rest = text.partition(":")
        if sep and _ENTITY.fullmatch(target):
            # "entity:GUID" (what ``crmload export`` writes) names the record's entity in the value, so one
            # Customer column can point at accounts and contacts alike.
            target, text = target.lower(), rest.strip()
        else:
            target = o.target
        try:
            return cls(target, UUID(text))
        except ValueError:
            raise ValueError(
                "not a GUID (to point at a record by its source key, map it as {lookup = ..., key = ...})"
            ) from None

    return convert


def _key(text: str, o: Options) -> Key:
    return Key(_uuid(text, o))


#: CRM type name -> converter.
CONVERTERS: Mapping[str, Callable[[str, Options], Any]] = {
    "String": _string,
    "State": _string,
    "EntityNameReference": _string,
    "CrmNumber": _integer,
    "CrmFloat": _float,
    "CrmDecimal": _decimal,
    "CrmMoney": _money,
    "CrmBoolean": _boolean,
    "CrmDateTime": _datetime,
    "Picklist": _picklist,
    "Status": _status,
    "UniqueIdentifier": _uuid,
    "Key": _key,
    "Lookup": _reference(Lookup),
    "Customer": _reference(Customer),
    "Owner": _reference(Owner),
}

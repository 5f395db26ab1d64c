"""Typed CRM values -> CSV text and header types that ``crmload import`` reads back to the same values.

The grammar is import's (``crmload.load.mapping``): a header is ``name`` or ``name:type`` with ``type`` one of
its aliases, ``lookup(entity)`` or ``key(entity)``. The text of each value is what import's converters turn
back into the value that was read:

- ``None`` -> empty; a string as it is (import keeps "" as "", so an empty string and a null both read back
  as the empty string CRM was sent: the file stays the same through a round trip);
- bool ``true``/``false``; int and option sets (``Picklist``, ``Status``) as their integer value;
- ``Decimal`` and ``Money`` with the scale CRM answered (``str``), float by ``repr`` (shortest exact text);
- date-times in UTC, ISO 8601 with ``Z`` (a naive one is taken as UTC, as import's default zone reads it);
- lookups as ``entity:GUID`` (import reads the entity from the value, so a Customer column may mix accounts
  and contacts), or, with ``key_of`` naming the target entity, as that record's key (``key(entity)`` header).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from crmload.errors import ConfigError
from crmload.metadata import EntityMeta
from crmload.types import Customer, Key, Lookup, Money, Owner, Picklist, Status

__all__ = ["HEADER_TYPES", "LOADABLE", "format_value", "header_for", "type_of_value"]

#: CRM type -> the header type import reads it with ("" for none: a String column needs no type).
HEADER_TYPES: Mapping[str, str] = {
    "String": "",
    "CrmNumber": "int",
    "CrmFloat": "float",
    "CrmDecimal": "decimal",
    "CrmMoney": "money",
    "CrmBoolean": "bool",
    "CrmDateTime": "datetime",
    "Picklist": "picklist",
    "Status": "status",
    "UniqueIdentifier": "uuid",
    "Key": "",
    "Lookup": "lookup",
    "Customer": "customer",
    "Owner": "owner",
}
#: CRM types an exported column may have: the ones import can load from a file.
LOADABLE = frozenset(HEADER_TYPES)
_REFS = frozenset({"Lookup", "Customer", "Owner"})


def type_of_value(value: object) -> str | None:
    """The CRM type of a value the client decoded, or None for a null (the column's type stays unknown)."""
    checks: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (Customer, "Customer"),
        (Owner, "Owner"),
        (Lookup, "Lookup"),
        (Picklist, "Picklist"),
        (Status, "Status"),
        (Money, "CrmMoney"),
        (Key, "Key"),
        (bool, "CrmBoolean"),
        (int, "CrmNumber"),
        (float, "CrmFloat"),
        (Decimal, "CrmDecimal"),
        (datetime, "CrmDateTime"),
        (UUID, "UniqueIdentifier"),
        (str, "String"),
    )
    for cls, name in checks:
        if isinstance(value, cls):
            return name
    return None


def header_for(attribute: str, crm_type: str, target: str | None, *, by_key: bool, known: bool) -> str:
    """The header of one column: ``revenue:money``, ``parentcustomerid:lookup(account)``, ``x:key(account)``.

    ``known``: the metadata types the attribute, so a String column needs no ``:string``.
    """
    if crm_type in _REFS:
        if by_key:
            return f"{attribute}:key({target})"
        return f"{attribute}:{HEADER_TYPES[crm_type]}({target})"
    kind = HEADER_TYPES.get(crm_type)
    if kind is None:
        raise ConfigError(f"column {attribute!r}: type {crm_type} cannot be imported from a file")
    if not kind:
        return attribute if known or crm_type == "Key" else f"{attribute}:string"
    return f"{attribute}:{kind}"


def _utc(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    text = aware.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
    return text + "Z"


def format_value(value: Any, *, keys: Mapping[UUID, str] | None = None) -> str:  # noqa: PLR0911 - a type each
    """One value as import reads it back (see the module docstring); ``keys`` turns a lookup into a key."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Lookup):
        if keys is not None:
            key = keys.get(value.id)
            if key is None:
                raise ConfigError(f"{value.entity} {value.id} has no key value to write (--key-of)")
            return key
        return f"{value.entity}:{value.id}"
    if isinstance(value, (Picklist, Status)):
        return str(value.value)
    if isinstance(value, Money):
        return str(value.value)
    if isinstance(value, Key):
        return str(value.id)
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def guess_target(meta: EntityMeta | None, attribute: str, crm_type: str, names: list[str]) -> str:
    """A lookup column's default target when no value on the first page named one.

    The values carry their entity (``entity:GUID``), so this only has to be an entity import accepts:
    Owner -> systemuser, else the longest entity name the attribute ends with (``parentaccountid`` ->
    account), else Customer -> account, else the exported entity itself.
    """
    if crm_type == "Owner":
        return "systemuser"
    stem = attribute.removesuffix("id")
    found = [n for n in names if stem.endswith(n)]
    if found:
        return max(found, key=len)
    if crm_type == "Customer":
        return "account"
    return meta.name if meta is not None else "account"

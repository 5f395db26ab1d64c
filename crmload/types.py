"""CRM 4.0 value types that a Python value cannot express on its own.

Plain Python values map to CRM property types by their type alone: ``str`` String, ``bool`` CrmBoolean
(checked before ``int``), ``int`` CrmNumber, ``float`` CrmFloat, ``Decimal`` CrmDecimal, aware ``datetime``
CrmDateTime, ``None`` IsNull and ``UUID`` UniqueIdentifier. The classes here cover the rest: references to
other records, option sets, money and primary keys.

    >>> from uuid import UUID
    >>> Lookup("account", "a1b2c3d4-0000-0000-0000-000000000001")
    Lookup(entity='account', id=UUID('a1b2c3d4-0000-0000-0000-000000000001'))
    >>> Money("1500.25").value
    Decimal('1500.25')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from crmload.errors import BadValueError

__all__ = [
    "AltKey",
    "Customer",
    "Key",
    "Lookup",
    "Money",
    "MultiPicklist",
    "Owner",
    "Picklist",
    "Status",
    "as_uuid",
    "is_name",
]

# CRM logical names are lowercase ASCII identifiers; custom ones carry a publisher prefix such as ``new_``.
# Mixed case is accepted because some tools spell schema names; anything else could inject markup.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def is_name(name: object) -> bool:
    """Return True if ``name`` is a safe CRM entity or attribute name (an ASCII identifier)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def as_uuid(value: object, what: str = "id") -> UUID:
    """Return ``value`` as a UUID: a UUID as is, or a string that parses as one; ``BadValueError`` else."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise BadValueError(f"{what} is not a GUID: {value[:60]!r}") from None
    raise BadValueError(f"{what} must be a UUID or a GUID string, not {type(value).__name__}")


def _as_int32(value: object, what: str) -> int:
    # bool is an int subclass, and Picklist(True) is almost certainly a mapping mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValueError(f"{what} must be an int, not {type(value).__name__}")
    if not -(2**31) <= value < 2**31:
        raise BadValueError(f"{what} {value} does not fit CRM's 32-bit int")
    return value


@dataclass(frozen=True, slots=True)
class Lookup:
    """A reference to another record: ``LookupProperty`` on the wire, with the target entity in ``type``.

    Args:
        entity: logical name of the referenced entity, e.g. ``"account"``.
        id: the referenced record's GUID (a UUID, or a string that parses as one).
    """

    entity: str
    id: UUID

    def __post_init__(self) -> None:
        if not is_name(self.entity):
            raise BadValueError(
                f"{type(self).__name__}.entity is not an entity name: {str(self.entity)[:60]!r}"
            )
        object.__setattr__(self, "id", as_uuid(self.id, f"{type(self).__name__}.id"))


@dataclass(frozen=True, slots=True)
class Customer(Lookup):
    """A customer reference (account or contact): ``CustomerProperty`` on the wire."""


@dataclass(frozen=True, slots=True)
class Owner(Lookup):
    """An owner reference (systemuser or team): ``OwnerProperty`` on the wire."""


@dataclass(frozen=True, slots=True)
class Picklist:
    """An option-set value: ``PicklistProperty``; ``value`` is the option's integer."""

    value: int

    def __post_init__(self) -> None:
        _as_int32(self.value, "Picklist.value")


@dataclass(frozen=True, slots=True)
class Status:
    """A status reason (``statuscode``): ``StatusProperty``; ``value`` is the option's integer."""

    value: int

    def __post_init__(self) -> None:
        _as_int32(self.value, "Status.value")


@dataclass(frozen=True, slots=True)
class Money:
    """A currency amount: ``CrmMoneyProperty``. Accepts a Decimal, an int or a decimal string.

    A float is accepted through ``str(float)`` (its shortest repr), so ``Money(0.1)`` is exactly ``0.1``.
    """

    value: Decimal

    def __post_init__(self) -> None:
        raw: Any = self.value
        if isinstance(raw, bool):
            raise BadValueError("Money.value must be a Decimal, int or str, not bool")
        if isinstance(raw, float):
            raw = str(raw)
        if isinstance(raw, (int, str)):
            try:
                raw = Decimal(raw)
            except InvalidOperation:
                raise BadValueError(f"Money.value is not a number: {str(self.value)[:60]!r}") from None
        if not isinstance(raw, Decimal):
            raise BadValueError(f"Money.value must be a Decimal, int or str, not {type(raw).__name__}")
        if not raw.is_finite():
            raise BadValueError(f"Money.value must be finite, not {raw}")
        object.__setattr__(self, "value", raw)


@dataclass(frozen=True, slots=True)
class Key:
    """A primary key value: ``KeyProperty``. Creates with a client-chosen id use it under ``<entity>id``."""

    id: UUID

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", as_uuid(self.id, "Key.id"))


# Values an alternate key may hold: CRM keys are built from string, integer, decimal, date, lookup and
# option-set columns.
_KEY_VALUE_TYPES = (str, int, Decimal, float, datetime, UUID, Picklist, Lookup)


@dataclass(frozen=True, slots=True)
class AltKey:
    """A reference to a record by its alternate key, with no id: ``EntityReference`` with ``KeyAttributes``.

    The Organization service (CRM 2015 Update 1 / 7.1 and later) resolves it on the server, so a child can
    name its parent by business key without an id cache or a query. CRM 4.0 has no alternate keys: there
    it is an ``EncodingError``.

        >>> AltKey("account", {"accountnumber": "A-1"}).keys
        (('accountnumber', 'A-1'),)

    Args:
        entity: logical name of the referenced entity.
        keys: the key's attributes and values, in the key's order (a mapping or pairs).
    """

    entity: str
    keys: tuple[tuple[str, Any], ...]

    def __init__(self, entity: str, keys: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        pairs = tuple(keys.items()) if isinstance(keys, Mapping) else tuple(keys)
        object.__setattr__(self, "entity", entity)
        object.__setattr__(self, "keys", pairs)
        if not is_name(entity):
            raise BadValueError(f"AltKey.entity is not an entity name: {str(entity)[:60]!r}")
        if not pairs:
            raise BadValueError("AltKey needs at least one key attribute")
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and is_name(pair[0])):
                raise BadValueError(f"AltKey key attribute is not a (name, value) pair: {str(pair)[:60]!r}")
            if isinstance(pair[1], bool) or not isinstance(pair[1], _KEY_VALUE_TYPES):
                raise BadValueError(f"AltKey {pair[0]}: a {type(pair[1]).__name__} cannot be a key value")


@dataclass(frozen=True, slots=True)
class MultiPicklist:
    """A multi-select option set (CRM 9.0+): ``OptionSetValueCollection``; ``values`` are the options' ints.

    An empty collection clears the field. CRM 4.0 has no multi-select: there it is an ``EncodingError``.
    """

    values: tuple[int, ...]

    def __init__(self, values: Iterable[int]) -> None:
        if isinstance(values, (str, bytes)):
            raise BadValueError("MultiPicklist.values must be integers, not a string")
        items = tuple(values)
        for v in items:
            _as_int32(v, "MultiPicklist value")
        object.__setattr__(self, "values", items)

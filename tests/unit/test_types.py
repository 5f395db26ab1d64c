"""Value types validate on construction and accept friendly input."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from uuid import UUID

import pytest

from crmload.types import Customer, Key, Lookup, Money, Owner, Picklist, Status

GUID = UUID("a1b2c3d4-0000-0000-0000-000000000001")


def test_lookup_accepts_uuid_or_string_and_is_frozen() -> None:
    assert Lookup("account", str(GUID)) == Lookup("account", GUID)
    assert Customer("contact", GUID).id == GUID
    assert isinstance(Owner("team", GUID), Lookup)
    assert Customer("account", GUID) != Lookup("account", GUID)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Lookup("account", GUID).entity = "x"  # type: ignore[misc]
    assert not hasattr(Lookup("account", GUID), "__dict__")


@pytest.mark.parametrize(
    ("entity", "id_", "exc"),
    [
        ("account", "nope", ValueError),
        ("account", 12, TypeError),
        ("acc ount", GUID, ValueError),
        ('a"><x', GUID, ValueError),
        ("", GUID, ValueError),
    ],
)
def test_lookup_rejects_bad_input(entity: str, id_: object, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Lookup(entity, id_)  # type: ignore[arg-type]


def test_picklist_and_status_want_int32() -> None:
    assert Picklist(2).value == 2
    assert Status(1).value == 1
    for bad in (True, "2", 2.0, 2**31):
        with pytest.raises((TypeError, ValueError)):
            Picklist(bad)  # type: ignore[arg-type]


def test_money_conversions() -> None:
    assert Money("1500.25").value == Decimal("1500.25")
    assert Money(3).value == Decimal(3)
    assert Money(0.1).value == Decimal("0.1")  # type: ignore[arg-type]
    for bad in ("abc", Decimal("NaN"), float("inf"), True, None):
        with pytest.raises((TypeError, ValueError)):
            Money(bad)  # type: ignore[arg-type]


def test_key() -> None:
    assert Key(str(GUID)).id == GUID
    with pytest.raises(ValueError, match="GUID"):
        Key("x")  # type: ignore[arg-type]

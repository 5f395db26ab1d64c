"""No-socket checks of the mock's parts: typed values, the seeded fault injector, the store."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from crmload.mock.faults import FaultInjector, FaultPlan
from crmload.mock.store import Duplicate, Missing, Store
from crmload.mock.values import BadValue, Value, convert, render_dynamic, render_typed, to_json


@pytest.mark.parametrize(
    ("crm_type", "text", "expected"),
    [
        ("CrmNumber", " 3 ", 3),
        ("CrmFloat", "98.5", 98.5),
        ("CrmMoney", "1500.25", Decimal("1500.25")),
        ("CrmBoolean", "1", True),
        ("CrmBoolean", "false", False),
        ("Key", "{A1B2C3D4-0000-0000-0000-000000000001}", uuid.UUID("a1b2c3d4-0000-0000-0000-000000000001")),
        ("String", "", ""),
        ("CrmDateTime", "1980-05-17T00:00:00", "1980-05-17T00:00:00"),
    ],
)
def test_convert(crm_type: str, text: str, expected: object) -> None:
    assert convert(crm_type, text).value == expected


@pytest.mark.parametrize(
    ("crm_type", "text"),
    [("CrmNumber", "1.5"), ("CrmBoolean", "yes"), ("Lookup", "x"), ("CrmDecimal", "Infinity")],
)
def test_convert_refuses(crm_type: str, text: str) -> None:
    with pytest.raises(BadValue):
        convert(crm_type, text)


def test_rendering_and_json() -> None:
    ref = convert("Customer", "a1b2c3d4-0000-0000-0000-000000000001", "account")
    assert to_json(ref) == {"type": "account", "id": "a1b2c3d4-0000-0000-0000-000000000001"}
    assert 'xsi:type="q1:CustomerProperty"' in render_dynamic("parentcustomerid", ref, "q1")
    assert 'type="account"' in render_typed("parentcustomerid", ref)
    assert render_typed("x", Value("String", None)) == ""
    assert 'IsNull="true"' in render_dynamic("x", Value("CrmMoney", None), "q1")
    assert "&lt;b&gt;" in render_typed("name", Value("String", "<b>"))


def test_injector_is_seeded() -> None:
    def draws(seed: int) -> list[bool]:
        inj = FaultInjector(FaultPlan(busy_rate=0.5, seed=seed))
        return [inj.chance(0.5) for _ in range(50)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_over_rate_uses_the_injected_clock() -> None:
    now = [0.0]
    inj = FaultInjector(FaultPlan(busy_above_rate=2), clock=lambda: now[0])
    assert [inj.over_rate() for _ in range(3)] == [False, False, True]
    now[0] = 1.5
    assert inj.over_rate() is False


def test_store() -> None:
    store = Store()
    rid = store.create("account", "accountid", {"name": Value("String", "a")}, None)
    with pytest.raises(Duplicate):
        store.create("account", "accountid", {}, rid)
    store.update("account", rid, {"name": Value("String", "b")}, "accountid")
    assert store.records_json("account") == [{"accountid": str(rid), "name": "b"}]
    store.delete("account", rid)
    with pytest.raises(Missing):
        store.get("account", rid)
    assert store.counts() == {}

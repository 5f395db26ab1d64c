"""Import reads a lookup written as ``entity:GUID`` (as ``crmload export`` writes it): the value names
its entity."""

from __future__ import annotations

import uuid

import pytest

from crmload.errors import MappingError
from crmload.load.mapping import Mapper
from crmload.types import Customer, Lookup


def test_entity_in_the_value_overrides_the_header_target() -> None:
    a, c = uuid.uuid4(), uuid.uuid4()
    m = Mapper("contact")
    one = m.map(2, {"parentcustomerid:lookup(account)": f"account:{a}"})
    two = m.map(3, {"parentcustomerid:lookup(account)": f"contact:{c}"})
    three = m.map(4, {"parentcustomerid:lookup(account)": str(a)})
    assert one.attrs["parentcustomerid"] == Customer("account", a)
    assert two.attrs["parentcustomerid"] == Customer("contact", c)
    assert three.attrs["parentcustomerid"] == Customer("account", a)
    assert (
        type(
            Mapper("account")
            .map(2, {"parentaccountid:lookup(account)": f"account:{a}"})
            .attrs["parentaccountid"]
        )
        is Lookup
    )


def test_entity_with_no_guid_is_a_row_error() -> None:
    with pytest.raises(MappingError, match="not a GUID"):
        Mapper("contact").map(5, {"parentcustomerid:lookup(account)": "account:nope"})

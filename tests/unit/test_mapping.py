"""Mapper: metadata types, header types, TOML maps, keys, lookups by key, and precise MappingErrors."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from uuid import NAMESPACE_URL, UUID, uuid5

import pytest

from crmload.errors import ConfigError, MappingError
from crmload.load.keys import entity_namespace, key_id
from crmload.load.mapping import Mapper, MapSpec
from crmload.types import Customer, Lookup, Money, Picklist, Status


def test_entity_namespace_is_the_documented_constant() -> None:
    assert entity_namespace("Account") == uuid5(NAMESPACE_URL, "crmload:entity:account")
    assert key_id("account", "A-1") == uuid5(uuid5(NAMESPACE_URL, "crmload:entity:account"), "A-1")


def test_types_come_from_metadata() -> None:
    m = Mapper("account")
    rec = m.map(
        2,
        {
            "name": " Contoso ",
            "revenue": "1,200.50",
            "industrycode": "3",
            "creditonhold": "yes",
            "numberofemployees": "12",
            "lastusedincampaign": "2024-01-02",
            "statuscode": "1",
        },
    )
    assert rec.attrs == {
        "name": "Contoso",
        "revenue": Money(Decimal("1200.50")),
        "industrycode": Picklist(3),
        "creditonhold": True,
        "numberofemployees": 12,
        "lastusedincampaign": datetime(2024, 1, 2, tzinfo=timezone.utc),
        "statuscode": Status(1),
    }
    assert rec.id is None


def test_header_types_and_key_lookup() -> None:
    m = Mapper("contact")
    guid = "a1b2c3d4-0000-0000-0000-000000000001"
    rec = m.map(2, {"parentcustomerid:lookup(account)": guid, "new_score:float": "1.5"})
    assert rec.attrs["parentcustomerid"] == Customer("account", UUID(guid))
    assert rec.attrs["new_score"] == 1.5
    rec = m.map(3, {"parentcustomerid:key(account)": "A-7"})
    assert rec.attrs["parentcustomerid"] == Customer("account", key_id("account", "A-7"))


def test_key_gives_the_deterministic_id_and_is_not_sent_when_not_an_attribute() -> None:
    m = Mapper("account", key="legacy")
    m.prepare(["legacy", "name"])
    rec = m.map(2, {"legacy": " L-9 ", "name": "x"})
    assert rec.id == key_id("account", "L-9")
    assert rec.key == "L-9"
    assert "legacy" not in rec.attrs
    with pytest.raises(MappingError, match="key column 'legacy' is empty"):
        m.map(3, {"legacy": "", "name": "x"})


def test_id_column_names_the_record() -> None:
    guid = "a1b2c3d4-0000-0000-0000-000000000002"
    rec = Mapper("account").map(2, {"accountid": guid, "name": "x"})
    assert rec.id == UUID(guid)
    assert "accountid" not in rec.attrs


def test_toml_map_renames_types_labels_formats_constants_defaults(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        """
key = "code"
[options]
empty_as_null = true
timezone = "Europe/Paris"
[columns]
"Company" = "name"
Sector = { attribute = "industrycode", labels = { "Retail" = 3, "Consulting" = 2 } }
Founded = { attribute = "lastusedincampaign", format = "%d/%m/%Y" }
Notes = { skip = true }
[constants]
address1_country = "France"
[defaults]
telephone1 = "n/a"
""",
        encoding="utf-8",
    )
    m = Mapper("account", spec=MapSpec.load(path))
    m.prepare(["code", "Company", "Sector", "Founded", "Notes", "telephone1"])
    rec = m.map(
        2,
        {
            "code": "A",
            "Company": "",
            "Sector": "retail",
            "Founded": "14/07/2020",
            "Notes": "?",
            "telephone1": "",
        },
    )
    assert rec.attrs["name"] is None  # empty_as_null
    assert rec.attrs["industrycode"] == Picklist(3)  # labels match case-insensitively
    assert rec.attrs["lastusedincampaign"].utcoffset().total_seconds() == 7200  # Paris summer time
    assert rec.attrs["address1_country"] == "France"
    assert rec.attrs["telephone1"] == "n/a"
    assert "Notes" not in rec.attrs
    assert "notes" not in rec.attrs
    with pytest.raises(MappingError, match=r"unknown label \(known: Consulting, Retail\)"):
        m.map(3, {"code": "B", "Sector": "Mining"})


def test_lookup_by_source_key_from_the_map() -> None:
    spec = MapSpec.from_dict({"columns": {"parentcustomerid": {"lookup": "account", "key": "account_key"}}})
    m = Mapper("contact", spec=spec)
    m.prepare(["account_key", "lastname"])
    rec = m.map(2, {"account_key": "A-000001", "lastname": "x"})
    assert rec.attrs["parentcustomerid"] == Customer("account", key_id("account", "A-000001"))
    assert isinstance(rec.attrs["parentcustomerid"], Lookup)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("numberofemployees", "12.5", "not a whole number"),
        ("numberofemployees", "99999999999", "out of range"),
        ("revenue", "12,5", "not an amount of money"),
        ("revenue", "1.2.3", "not an amount of money"),
        ("lastusedincampaign", "2024-02-30", "not a date"),
        ("creditonhold", "maybe", "not a boolean"),
        ("industrycode", "Retail", "unknown label"),
        ("address1_latitude", "north", "not a number"),
        ("name", "bell\x07", r"control character U\+0007"),
        ("parentaccountid:lookup(account)", "not-a-guid", "not a GUID"),
    ],
)
def test_bad_values_raise_precise_mapping_errors(column: str, value: str, reason: str) -> None:
    with pytest.raises(MappingError, match=reason) as info:
        Mapper("account").map(7, {column: value})
    assert info.value.line_no == 7
    assert info.value.column == column
    assert info.value.value == value


def test_unknown_columns_and_bad_maps_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown column.*'bogus'"):
        Mapper("account").prepare(["name", "bogus"])
    Mapper("account", spec=MapSpec(unknown_columns="ignore")).prepare(["name", "bogus"])
    with pytest.raises(ConfigError, match="name its entity"):
        Mapper("account").prepare(["parentaccountid"])
    with pytest.raises(ConfigError, match="unknown type"):
        Mapper("account").prepare(["name:blob"])
    with pytest.raises(ConfigError, match="both map to 'name'"):
        Mapper("account", spec=MapSpec.from_dict({"columns": {"n": "name"}})).prepare(["n", "name"])
    with pytest.raises(ConfigError, match="unknown time zone"):
        MapSpec(timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="unknown section"):
        MapSpec.from_dict({"colums": {}})
    with pytest.raises(ConfigError, match="--key column 'k'"):
        Mapper("account", key="k").prepare(["name"])


def test_reserved_columns_are_ignored_and_unknown_entities_take_strings() -> None:
    m = Mapper("new_thing")
    rec = m.map(2, {"new_name": "x", "crmload_error": "old", "new_count:int": "3"})
    assert rec.attrs == {"new_name": "x", "new_count": 3}


def test_library_values_pass_or_get_wrapped() -> None:
    rec = Mapper("account").map(
        1, {"revenue": Decimal("5"), "industrycode": 3, "name": None, "numberofemployees": 4}
    )
    assert rec.attrs == {
        "revenue": Money(Decimal("5")),
        "industrycode": Picklist(3),
        "name": None,
        "numberofemployees": 4,
    }

"""Attribute limits (issue 16 #16): the shared check, the metadata declaring them, the loader's mapping."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from crmload.errors import ConfigError, MappingError
from crmload.limits import DEFAULT_LIMITS, AttrLimits, check, parse_crm_datetime
from crmload.load.mapping import Mapper, MapSpec
from crmload.metadata import load_metadata
from crmload.types import Money

META = load_metadata()
ACCOUNT = META.entity("account")


def test_bundled_lengths_and_type_defaults() -> None:
    assert ACCOUNT.limits_of("name") == AttrLimits(max_length=160)
    assert ACCOUNT.limits_of("accountnumber") == AttrLimits(max_length=20)
    assert ACCOUNT.limits_of("description") == AttrLimits(max_length=2000)
    assert ACCOUNT.limits_of("address1_line3") == AttrLimits(max_length=250)  # 50 in 4.0, 250 since
    assert ACCOUNT.limits_of("telephone1") == AttrLimits(max_length=50)
    assert META.entity("contact").limits_of("fullname") == AttrLimits(max_length=160)
    # Not in limits.json: CRM's nvarchar default.
    assert META.entity("competitor").limits_of("name") == DEFAULT_LIMITS["String"]
    assert ACCOUNT.limits_of("creditlimit") == DEFAULT_LIMITS["CrmMoney"]
    assert ACCOUNT.limits_of("exchangerate") is not None
    assert ACCOUNT.limits_of("exchangerate").precision == 10  # type: ignore[union-attr]
    assert ACCOUNT.limits_of("nosuchattribute") is None


@pytest.mark.parametrize(
    ("crm_type", "value", "fits"),
    [
        ("String", "x" * 160, True),
        ("String", "x" * 161, False),
        ("String", "x" * 200_000, False),
        # CRM counts UTF-16 code units: 80 G clefs are 160 units, 81 are 162.
        ("String", "\U0001d11e" * 80, True),
        ("String", "\U0001d11e" * 81, False),
        ("CrmDateTime", "1753-01-01T00:00:00", True),
        ("CrmDateTime", "9999-12-31T23:59:59", True),
        ("CrmDateTime", "0001-01-01", False),
        ("CrmDateTime", "1752-12-31T23:59:59Z", False),
        ("CrmDateTime", "1753-01-01T00:30:00+01:00", False),  # 1752-12-31T23:30 in UTC
        ("CrmDateTime", "9999-12-31T23:00:00-05:00", False),  # crosses 9999 in UTC
        ("CrmDateTime", "0000-01-01", False),
        ("CrmDateTime", "not a date", False),
        ("CrmDateTime", "2024-02-30", False),
        ("CrmDateTime", datetime(1, 1, 1, tzinfo=timezone.utc), False),
        ("CrmDateTime", datetime(1753, 1, 1, tzinfo=timezone(timedelta(hours=-1))), True),
        ("CrmDateTime", datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))), False),
        ("CrmMoney", Decimal("922337203685477"), True),
        ("CrmMoney", Decimal("-922337203685477.0000"), True),
        ("CrmMoney", Decimal("922337203685478"), False),
        ("CrmMoney", Decimal("12345678901234567890123456789"), False),
        ("CrmMoney", Money(Decimal("1.2345")), True),
        ("CrmMoney", Money(Decimal("1.23456")), False),
        ("CrmDecimal", Decimal("100000000000"), True),
        ("CrmDecimal", Decimal("100000000000.01"), False),
        ("CrmDecimal", Decimal("0.125"), False),
        ("CrmDecimal", Decimal("0.120"), True),  # trailing zeros are not places
        ("CrmNumber", 2**31 - 1, True),
        ("CrmNumber", 2**31, False),
        ("CrmBoolean", True, True),
        ("String", None, True),
    ],
)
def test_check_default_limits(crm_type: str, value: object, fits: bool) -> None:
    limits = AttrLimits(max_length=160) if crm_type == "String" else DEFAULT_LIMITS.get(crm_type)
    assert (check(crm_type, limits, value) is None) is fits


def test_parse_crm_datetime_reads_offsets_as_utc() -> None:
    assert parse_crm_datetime("2024-03-31T14:00:00+02:00") == datetime(2024, 3, 31, 12)
    assert parse_crm_datetime("2024-03-31T14:00:00.1234567Z") == datetime(2024, 3, 31, 14)
    assert parse_crm_datetime("2024-03-31") == datetime(2024, 3, 31)
    assert parse_crm_datetime("31/03/2024") is None


def test_user_metadata_declares_limits(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text(
        "[account.attributes]\n"
        "name = { max_length = 300 }\n"
        'new_code = { type = "String", max_length = 8 }\n'
        'new_rate = { type = "CrmDecimal", precision = 6, max_value = 1 }\n'
        'creditlimit = "CrmMoney"\n',
        encoding="utf-8",
    )
    acc = load_metadata(extra).entity("account")
    assert acc.limits_of("name") == AttrLimits(max_length=300)
    assert acc.type_of("new_code") == "String"
    assert acc.limits_of("new_code") == AttrLimits(max_length=8)
    rate = acc.limits_of("new_rate")
    assert rate is not None
    assert (rate.precision, rate.max_value, rate.min_value) == (6, Decimal(1), Decimal("-100000000000"))
    # Plain type names still work, as before.
    assert acc.limits_of("creditlimit") == DEFAULT_LIMITS["CrmMoney"]


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"name": {"max_lenght": 3}}, r"unknown field\(s\) max_lenght"),
        ({"new_x": {"max_length": 3}}, "a new attribute needs a type"),
        ({"name": {"max_length": -1}}, "max_length must be a whole number"),
        ({"name": {"max_length": "ten"}}, "max_length must be a whole number"),
        ({"creditlimit": {"max_value": "lots"}}, "creditlimit"),
    ],
)
def test_bad_limit_declarations_are_config_errors(tmp_path: Path, attrs: dict, message: str) -> None:
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"account": {"attributes": attrs}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_metadata(extra)


def test_retyped_attribute_drops_its_old_limits(tmp_path: Path) -> None:
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"account": {"attributes": {"name": "CrmNumber"}}}), encoding="utf-8")
    assert load_metadata(extra).entity("account").limits_of("name") == DEFAULT_LIMITS["CrmNumber"]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("name", "n" * 200_000, "200000 characters, longer than the maximum length 160"),
        ("accountnumber", "A" * 21, "longer than the maximum length 20"),
        ("lastusedincampaign", "0001-01-01", "outside the valid range 1753-01-01"),
        ("lastusedincampaign", "10000-01-01", "not a date"),
        ("creditlimit", "1" * 29, "outside the valid range -922337203685477..922337203685477"),
        ("creditlimit", "$1.23456", "more than 4 decimal places"),
        ("exchangerate", "0", "outside the valid range 0.0000000001..100000000000"),
        ("address1_latitude", "1e400", "not a number CRM can hold"),
    ],
)
def test_mapping_rejects_values_over_the_limit(column: str, value: str, reason: str) -> None:
    m = Mapper("account")
    with pytest.raises(MappingError) as info:
        m.map(7, {"accountnumber": "A-1", column: value})
    err = info.value
    assert (err.line_no, err.column) == (7, column)
    assert reason in str(err)


def test_mapping_accepts_values_at_the_limit() -> None:
    m = Mapper("account")
    rec = m.map(
        2,
        {
            "name": "n" * 160,
            "lastusedincampaign": "1753-01-01T00:00:00Z",
            "creditlimit": "922,337,203,685,477.0000",
            "exchangerate": "0.0000000001",
        },
    )
    assert rec.attrs["name"] == "n" * 160
    assert rec.attrs["creditlimit"].value == Decimal("922337203685477.0000")


def test_mapping_checks_library_values_and_header_types() -> None:
    m = Mapper("account")
    with pytest.raises(MappingError, match="outside the valid range"):
        m.map(3, {"creditlimit": Money(Decimal("1e20"))})
    with pytest.raises(MappingError, match="outside the valid range 1753"):
        m.map(4, {"lastusedincampaign": datetime(1700, 1, 1, tzinfo=timezone.utc)})
    # A column the metadata does not know gets only what no attribute of its type exceeds: no length (a
    # custom attribute may hold 4,000), but money and dates keep CRM's platform-wide range.
    other = Mapper("new_thing", metadata=META)
    rec = other.map(5, {"label:string": "x" * 5000, "rate:decimal": "1.1234567890"})
    assert len(rec.attrs["label"]) == 5000
    with pytest.raises(MappingError, match="more than 10 decimal places"):
        other.map(6, {"rate:decimal": "1.12345678901"})
    with pytest.raises(MappingError, match="outside the valid range -922337203685477"):
        other.map(7, {"fee:money": "1" * 20})
    with pytest.raises(MappingError, match="outside the valid range 1753"):
        other.map(8, {"when:date": "1600-01-01"})


def test_map_file_constants_are_checked_too() -> None:
    spec = MapSpec.from_dict({"constants": {"accountnumber": "A" * 21}})
    with pytest.raises(ConfigError, match=r"constants\.accountnumber: .*maximum length 20"):
        Mapper("account", spec=spec)

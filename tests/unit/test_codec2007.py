"""Codec2007: hostile values round-trip exactly, illegal ones fail by name, responses parse by QName."""

from __future__ import annotations

import enum
import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from lxml import etree

from crmload.errors import (
    ConfigError,
    DuplicateRecord,
    EncodingError,
    ProtocolError,
    RecordNotFound,
    ServerBusyError,
)
from crmload.soap import Codec2007, Page, WhoAmI
from crmload.soap.ns import SOAP11_ENV, WS2006, WS2007
from crmload.types import Customer, Key, Lookup, Money, Owner, Picklist, Status

GUID = UUID("a1b2c3d4-0000-0000-0000-000000000001")
GOLDEN = Path(__file__).parent / "golden"
codec = Codec2007("Contoso")


def echo_retrieve(create_envelope: bytes, prefix: str = "q9") -> bytes:
    """Play CRM: answer an Execute/Retrieve with the properties a Create carried, under other prefixes."""
    props = etree.fromstring(create_envelope).find(f".//{{{WS2006}}}Properties")
    assert props is not None
    inner = etree.tostring(props).decode()
    return (
        f'<soap:Envelope xmlns:soap="{SOAP11_ENV}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        f'<soap:Body><ExecuteResponse xmlns="{WS2007}"><Response i:type="RetrieveResponse">'
        f'<{prefix}:BusinessEntity xmlns:{prefix}="{WS2006}" i:type="{prefix}:DynamicEntity" Name="account">'
        f"{inner}</{prefix}:BusinessEntity></Response></ExecuteResponse></soap:Body></soap:Envelope>"
    ).encode()


def round_trip(attrs: dict[str, Any]) -> dict[str, Any]:
    return codec.parse_retrieve(echo_retrieve(codec.build_create("account", attrs)))


HOSTILE = [
    "<script>alert(1)</script>",
    "AT&T &amp; &#13; &lt;",
    "a]]>b]]>",
    "\"double\" and 'single'",
    "emoji 😀 and CJK 漢字 and RTL \u202e",
    "line1\r\nline2\rline3\n",
    "\ttab\t",
    "  leading and trailing  ",
    "",
    "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>&e;",
    "\u00a0\u2028\ufffd\U0010ffff",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_round_trip_exactly(text: str) -> None:
    assert round_trip({"name": text}) == {"name": text}


def test_every_type_round_trips() -> None:
    attrs: dict[str, Any] = {
        "s": "x",
        "n": -(2**31),
        "f": 0.1,
        "d": Decimal("-12345678901234567890.000001"),
        "m": Money("1500.25"),
        "b": False,
        "t": datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        "utc": datetime(2024, 1, 1, tzinfo=timezone.utc),
        "l": Lookup("new_region", GUID),
        "c": Customer("account", GUID),
        "o": Owner("systemuser", GUID),
        "p": Picklist(3),
        "st": Status(2),
        "k": Key(GUID),
        "u": GUID,
        "z": None,
    }
    back = round_trip(attrs)
    assert back == attrs
    assert type(back["c"]) is Customer
    assert type(back["b"]) is bool


@pytest.mark.parametrize(
    "bad", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\ufffe", "\uffff", "\ud800", "a\udfffb"]
)
def test_xml_illegal_characters_raise_naming_the_attribute(bad: str) -> None:
    with pytest.raises(EncodingError) as info:
        codec.build_create("account", {"name": "ok", "description": f"before{bad}after"})
    assert info.value.column == "description"
    assert f"U+{ord(bad[-1] if len(bad) == 1 else bad[1]):04X}" in str(info.value)


def test_names_cannot_inject_markup() -> None:
    for name in ['name"><x', "na me", "1abc", "", "a:b", "name\x00"]:
        with pytest.raises(EncodingError):
            codec.build_create("account", {name: "x"})
    for entity in ["account><", "acc ount", "", "x" * 200]:
        with pytest.raises(ConfigError):
            codec.build_create(entity, {"name": "x"})
    with pytest.raises(EncodingError):
        codec.build_retrieve("account", GUID, ["name", "bad name"])
    with pytest.raises(EncodingError):
        codec.build_retrieve_multiple("account", {"bad name": 1})


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 1, 1),  # naive: CRM would read it as user-local time
        2**31,
        -(2**31) - 1,
        float("nan"),
        float("inf"),
        Decimal("NaN"),
        [1, 2],
        {"a": 1},
        b"bytes",
    ],
)
def test_values_crm_cannot_carry_raise_encoding_error(value: object) -> None:
    with pytest.raises(EncodingError) as info:
        codec.build_create("account", {"col": value})
    assert info.value.column == "col"


def test_bool_is_not_a_number_and_int_subclasses_work() -> None:
    class Size(enum.IntEnum):
        BIG = 7

    body = codec.build_create("account", {"flag": True, "size": Size.BIG, "n": 1})
    assert b'xsi:type="q1:CrmBooleanProperty" Name="flag"><q1:Value>true<' in body
    assert b'xsi:type="q1:CrmNumberProperty" Name="size"><q1:Value>7<' in body


def test_create_with_id_and_update_use_key_property() -> None:
    create = codec.build_create("account", {"name": "x"}, id=GUID)
    assert f'Name="accountid"><q1:Value>{GUID}</q1:Value>'.encode() in create
    with pytest.raises(ConfigError):
        codec.build_create("account", {"accountid": Key(GUID)}, id=GUID)
    update = codec.build_update("account", str(GUID), {"name": "y"})  # type: ignore[arg-type]
    assert b"<Update " in update
    assert f"{GUID}".encode() in update
    with pytest.raises(ConfigError):
        codec.build_update("account", "not-a-guid", {})  # type: ignore[arg-type]


def test_header_carries_org_and_caller() -> None:
    caller = UUID("11111111-2222-3333-4444-555555555555")
    root = etree.fromstring(Codec2007("A&B <Org>", caller_id=caller).build_who_am_i())
    ns = "http://schemas.microsoft.com/crm/2007/CoreTypes"
    assert root.findtext(f".//{{{ns}}}OrganizationName") == "A&B <Org>"
    assert root.findtext(f".//{{{ns}}}CallerId") == str(caller)
    assert root.findtext(f".//{{{ns}}}AuthenticationType") == "0"
    with pytest.raises(ConfigError):
        Codec2007("")


def test_soap_actions_match_the_bodies() -> None:
    base = "http://schemas.microsoft.com/crm/2007/WebServices/"
    assert codec.soap_action("Create") == base + "Create"
    assert codec.soap_action("retrieve") == base + "Execute"  # build_retrieve travels inside Execute
    assert codec.soap_action("RetrieveMultiple") == base + "RetrieveMultiple"
    assert codec.soap_action("who_am_i") == base + "Execute"
    with pytest.raises(ConfigError):
        codec.soap_action("Explode")


def test_retrieve_multiple_conditions() -> None:
    body = codec.build_retrieve_multiple(
        "contact", {"a": "x", "b": None, "c": [1, 2], "d": Lookup("account", GUID)}, page_size=10
    )
    q = "http://schemas.microsoft.com/crm/2006/Query"
    conds = etree.fromstring(body).findall(f".//{{{q}}}Condition")
    ops = [(c.findtext(f"{{{q}}}AttributeName"), c.findtext(f"{{{q}}}Operator")) for c in conds]
    assert ops == [("a", "Equal"), ("b", "Null"), ("c", "In"), ("d", "Equal")]
    assert [v.text for v in conds[2].iter(f"{{{q}}}Value")] == ["1", "2"]
    with pytest.raises(ConfigError):
        codec.build_retrieve_multiple("contact", page_size=0)
    with pytest.raises(ConfigError):
        codec.build_retrieve_multiple("contact", {"c": []})


def test_build_execute_checks_well_formedness() -> None:
    body = codec.build_execute('<Request xsi:type="WhoAmIRequest"/>')
    assert body == codec.build_who_am_i()
    with pytest.raises(ConfigError):
        codec.build_execute("<Request>")


# --- parsing ------------------------------------------------------------------------------------------------


def _envelope(inner: str, soap: str = SOAP11_ENV) -> bytes:
    return f'<?xml version="1.0"?><s:Envelope xmlns:s="{soap}"><s:Body>{inner}</s:Body></s:Envelope>'.encode()


def test_parse_create_both_forms() -> None:
    assert (
        codec.parse_create(
            _envelope(
                f'<CreateResponse xmlns="{WS2007}"><CreateResult>{GUID}</CreateResult></CreateResponse>'
            )
        )
        == GUID
    )
    execute = (
        f'<ExecuteResponse xmlns="{WS2007}" xmlns:x="http://www.w3.org/2001/XMLSchema-instance">'
        f'<Response x:type="CreateResponse"><id>{GUID}</id></Response></ExecuteResponse>'
    )
    assert codec.parse_create(_envelope(execute)) == GUID
    with pytest.raises(ProtocolError):
        codec.parse_create(
            _envelope(f'<CreateResponse xmlns="{WS2007}"><CreateResult>nope</CreateResult></CreateResponse>')
        )


def test_parse_who_am_i() -> None:
    ids = [UUID(int=i) for i in (1, 2, 3)]
    body = _envelope(
        f'<ExecuteResponse xmlns="{WS2007}"><Response><UserId>{ids[0]}</UserId>'
        f"<BusinessUnitId>{ids[1]}</BusinessUnitId><OrganizationId>{ids[2]}</OrganizationId></Response>"
        "</ExecuteResponse>"
    )
    assert codec.parse_who_am_i(body) == WhoAmI(*ids)


def test_parse_retrieve_multiple_dynamic_and_typed() -> None:
    xsi = "http://www.w3.org/2001/XMLSchema-instance"
    body = _envelope(
        f'<RetrieveMultipleResponse xmlns="{WS2007}">'
        f'<RetrieveMultipleResult xmlns:z="{WS2006}" xmlns:t="{xsi}" '
        'MoreRecords="1" PagingCookie="&lt;cookie page=&quot;1&quot;/&gt;">'
        "<z:BusinessEntities>"
        '<z:BusinessEntity t:type="z:DynamicEntity" Name="contact"><z:Properties>'
        '<z:Property t:type="z:StringProperty" Name="fullname"><z:Value>Diane</z:Value></z:Property>'
        '<z:Property t:type="z:CrmNumberProperty" Name="n">'
        '<z:Value formattedvalue="3"> 3 </z:Value></z:Property>'
        '<z:Property t:type="z:StringProperty" Name="gone"/>'
        '<z:Property t:type="z:StateProperty" Name="statecode"><z:Value>Active</z:Value></z:Property>'
        "</z:Properties></z:BusinessEntity>"
        f'<z:BusinessEntity t:type="contact"><fullname>Bob</fullname><parentcustomerid type="account" '
        f'name="Contoso">{GUID}</parentcustomerid><birthdate IsNull="true"/></z:BusinessEntity>'
        "</z:BusinessEntities></RetrieveMultipleResult></RetrieveMultipleResponse>"
    )
    page = codec.parse_retrieve_multiple(body)
    assert page == Page(
        records=[
            {"fullname": "Diane", "n": 3, "gone": None, "statecode": "Active"},
            {"fullname": "Bob", "parentcustomerid": Lookup("account", GUID), "birthdate": None},
        ],
        more_records=True,
        paging_cookie='<cookie page="1"/>',
    )
    empty = _envelope(
        f'<RetrieveMultipleResponse xmlns="{WS2007}">'
        '<RetrieveMultipleResult MoreRecords="false"/></RetrieveMultipleResponse>'
    )
    assert codec.parse_retrieve_multiple(empty) == Page([], False, None)


def test_parse_fetch_and_empty() -> None:
    body = _envelope(
        f'<FetchResponse xmlns="{WS2007}">'
        '<FetchResult>&lt;resultset morerecords="0"/&gt;</FetchResult></FetchResponse>'
    )
    assert codec.parse_fetch(body) == '<resultset morerecords="0"/>'
    codec.parse_empty(_envelope(f'<UpdateResponse xmlns="{WS2007}"/>'))
    codec.parse_empty(
        _envelope(f'<DeleteResponse xmlns="{WS2007}"/>', soap="http://www.w3.org/2003/05/soap-envelope")
    )


def test_fault_in_a_200_body_raises_typed_error() -> None:
    fault = (
        "<s:Fault><faultcode>s:Server</faultcode>"
        "<faultstring>Server was unable to process request.</faultstring>"
        "<detail><error><description>dup</description><code>0x80040237</code><type>Platform</type></error>"
        "</detail></s:Fault>"
    )
    with pytest.raises(DuplicateRecord) as info:
        codec.parse_create(_envelope(fault))
    assert info.value.code == "0x80040237"
    with pytest.raises(RecordNotFound):
        codec.parse_empty(_envelope(fault.replace("0x80040237", "0x80040217")))
    with pytest.raises(ServerBusyError):
        codec.parse_empty(_envelope(fault.replace("0x80040237", "0x80072322")))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<unclosed>",
        b"<a/>",
        _envelope(""),
        f'<s:Envelope xmlns:s="{SOAP11_ENV}"/>'.encode(),
        _envelope(f'<CreateResponse xmlns="{WS2007}"/>'),
        b"\xff\xfe<garbage" * 1000,
    ],
)
def test_garbage_becomes_protocol_error_with_short_message(body: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        codec.parse_create(body)
    assert len(str(info.value)) < 400


def test_parser_does_not_resolve_entities() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
        + _envelope(f'<FetchResponse xmlns="{WS2007}"><FetchResult>[&x;]</FetchResult></FetchResponse>')[21:]
    )
    with pytest.raises(ProtocolError, match="DOCTYPE"):
        codec.parse_fetch(xxe)
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i else b"&lol;") * 10) for i in range(10)
        )
        + b"]>"
        + _envelope(f'<FetchResponse xmlns="{WS2007}"><FetchResult>&lol9;</FetchResult></FetchResponse>')[21:]
    )
    with pytest.raises(ProtocolError):
        codec.parse_fetch(bomb)


# --- golden files -------------------------------------------------------------------------------------------

GOLDEN_CASES = {
    "create_account.xml": lambda: codec.build_create(
        "account",
        {
            "name": "Contoso & <Sons>",
            "revenue": Money("1500.25"),
            "primarycontactid": Lookup("contact", GUID),
        },
        id=GUID,
    ),
    "update_contact.xml": lambda: codec.build_update(
        "contact", GUID, {"jobtitle": "Buyer", "statuscode": Status(1)}
    ),
    "delete_contact.xml": lambda: codec.build_delete("contact", GUID),
    "retrieve_contact.xml": lambda: codec.build_retrieve("contact", GUID, ["fullname", "emailaddress1"]),
    "retrieve_multiple_contact.xml": lambda: codec.build_retrieve_multiple(
        "contact", {"parentcustomerid": GUID, "statecode": None}, ["contactid"], page_size=500
    ),
    "who_am_i.xml": codec.build_who_am_i,
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_envelopes(name: str) -> None:
    built = GOLDEN_CASES[name]()
    path = GOLDEN / name
    if os.environ.get("CRMLOAD_UPDATE_GOLDEN"):
        path.write_bytes(built)
    assert built == path.read_bytes(), f"{name} changed; rerun with CRMLOAD_UPDATE_GOLDEN=1 if intended"


def test_typed_nulls_through_null_property_hook() -> None:
    kinds = {"telephone1": "StringProperty", "industrycode": "PicklistProperty"}
    typed = Codec2007("Contoso", null_property=lambda entity, attr: kinds.get(attr))
    body = typed.build_create("account", {"telephone1": None, "industrycode": None, "other": None})
    assert b'<q1:Property xsi:type="q1:StringProperty" Name="telephone1"/>' in body
    assert b'"q1:PicklistProperty" Name="industrycode"><q1:Value IsNull="true"/>' in body
    assert b'"q1:CrmDateTimeProperty" Name="other"><q1:Value IsNull="true"/>' in body  # hook said "unknown"
    assert typed.parse_retrieve(echo_retrieve(body)) == {
        "telephone1": None,
        "industrycode": None,
        "other": None,
    }
    with pytest.raises(EncodingError):
        Codec2007("C", null_property=lambda e, a: "Bad Kind").build_update("account", GUID, {"x": None})

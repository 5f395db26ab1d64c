"""The Organization-service codec: real captures parse, values round-trip, faults map, batches per item.

No sockets; the WSDL oracle is ``test_zeep_oracle_2011.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from lxml import etree

from crmload.batch import CreateRequest, DeleteRequest, UpdateRequest, UpsertRequest
from crmload.errors import (
    BatchTooLargeError,
    ConfigError,
    CrmFault,
    DuplicateRecord,
    EncodingError,
    ItemNotRunError,
    ProtocolError,
    RecordNotFound,
    ServerBusyError,
)
from crmload.soap import Codec2007
from crmload.soap.codec2011 import Codec2011
from crmload.soap.faults import PARSER
from crmload.soap.faults2011 import parse_fault
from crmload.soap.ns import COLLECTIONS, SOAP11_ENV, XRM2011, XRM2011_SERVICES, XSI
from crmload.soap.values2011 import decode_entity, decode_pairs
from crmload.types import AltKey, Customer, Lookup, Money, MultiPicklist, Owner, Picklist, Status

SAMPLES = Path(__file__).resolve().parents[3] / "shared/reference/crm-wsdl/samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"captures not found at {SAMPLES}")
GUID = UUID("a1b2c3d4-0000-0000-0000-000000000001")
GUID2 = UUID("a1b2c3d4-0000-0000-0000-000000000002")
CODEC = Codec2011()
A = "{" + XRM2011 + "}"


def _request_params(envelope: bytes) -> tuple[str, dict[str, Any]]:
    """(RequestName, Parameters) of an Execute request, read the way a server reads it: by QName."""
    root = etree.fromstring(envelope, PARSER)
    request = root.find(f".//{{{XRM2011_SERVICES}}}request")
    assert request is not None
    params = request.find(A + "Parameters")
    return request.findtext(A + "RequestName") or "", decode_pairs(params) if params is not None else {}


def _target_entity(envelope: bytes) -> dict[str, Any]:
    root = etree.fromstring(envelope, PARSER)
    for pair in root.iter(A + "KeyValuePairOfstringanyType"):
        if pair.findtext("{" + COLLECTIONS + "}key") == "Target":
            value = pair.find("{" + COLLECTIONS + "}value")
            assert value is not None
            return decode_entity(value)
    entity = root.find(f".//{{{XRM2011_SERVICES}}}entity")
    assert entity is not None
    return decode_entity(entity)


# --- real captures --------------------------------------------------------------------------------------

CAPTURED_CONTACT = {
    "firstname": "Diane",
    "lastname": "Morgan & <Sons>",
    "gendercode": Picklist(2),
    "creditlimit": Money("1500.25"),
    "numberofchildren": 3,
    "exchangerate": Decimal("1.5"),
    "donotemail": True,
    "birthdate": datetime(1980, 5, 17, tzinfo=timezone.utc),
    "parentcustomerid": Lookup("account", GUID),
    "description": None,
}


@needs_samples
@pytest.mark.parametrize(
    "name",
    [
        "org-web_execute_create_contact.xrmservicetoolkit.request.xml",
        "org-web_execute_create_contact.xrmservicetoolkit-crm2015mode.request.xml",
    ],
)
def test_captured_create_decodes_as_ours(name: str) -> None:
    captured = (SAMPLES / name).read_bytes()
    assert _request_params(captured)[0] == "Create"
    assert _target_entity(captured) == CAPTURED_CONTACT
    ours = CODEC.build_create("contact", CAPTURED_CONTACT)
    assert _target_entity(ours) == CAPTURED_CONTACT


@needs_samples
def test_captured_update_delete_retrieve_whoami_decode() -> None:
    update = (SAMPLES / "org-web_execute_update_contact.xrmservicetoolkit.request.xml").read_bytes()
    name, params = _request_params(update)
    assert name == "Update"
    entity = _target_entity(update)
    assert entity["contactid"] == GUID2
    delete = (SAMPLES / "org-web_execute_delete_contact.xrmservicetoolkit.request.xml").read_bytes()
    assert _request_params(delete) == ("Delete", {"Target": Lookup("contact", GUID2)})
    retrieve = (SAMPLES / "org-web_execute_retrieve_contact.xrmservicetoolkit.request.xml").read_bytes()
    name, params = _request_params(retrieve)
    assert (name, params["Target"]) == ("Retrieve", Lookup("contact", GUID2))
    who = (SAMPLES / "org-web_execute_whoami.xrmservicetoolkit.request.xml").read_bytes()
    assert _request_params(who) == ("WhoAmI", {})
    assert _request_params(CODEC.build_who_am_i()) == ("WhoAmI", {})


@needs_samples
def test_captured_queries_decode() -> None:
    fetch = (
        SAMPLES / "org-web_execute_retrievemultiple_fetch_contact.xrmservicetoolkit.request.xml"
    ).read_bytes()
    name, params = _request_params(fetch)
    query = etree.fromstring(params["Query"].encode(), PARSER)
    assert (name, query.find("entity").get("name")) == ("RetrieveMultiple", "contact")  # type: ignore[union-attr]
    qe = "org-web_execute_retrievemultiple_queryexpression_account.xrmservicetoolkit.request.xml"
    root = etree.fromstring((SAMPLES / qe).read_bytes(), PARSER)
    assert root.findtext(f".//{A}EntityName") == "account"
    ours = etree.fromstring(CODEC.build_retrieve_multiple("account", columns=["name"]), PARSER)
    assert ours.findtext(f".//{A}EntityName") == "account"
    assert [
        c.text for c in ours.iter("{http://schemas.microsoft.com/2003/10/Serialization/Arrays}string")
    ] == [c.text for c in root.iter("{http://schemas.microsoft.com/2003/10/Serialization/Arrays}string")]


@needs_samples
def test_captured_soap12_retrieve_response_parses() -> None:
    body = (SAMPLES / "org-soap12_retrieve_systemuser.uktrade-fixture.response.xml").read_bytes()
    uid = UUID("0a0a00a0-0000-a000-a00a-a0000aaaa00a")
    assert CODEC.parse_retrieve(body) == {
        "firstname": "john",
        "lastname": "doe",
        "internalemailaddress": "john.doe@example.com",
        "systemuserid": uid,
    }


@needs_samples
def test_captured_whoami_response_parses_and_refuses_its_anonymised_ids() -> None:
    body = (SAMPLES / "org-soap12_execute_whoami.uktrade-fixture.response.xml").read_bytes()
    # The fixture's ids were anonymised to "001".."003", which are not GUIDs: a protocol error, not a crash.
    with pytest.raises(ProtocolError, match="UserId"):
        CODEC.parse_who_am_i(body)
    real = body
    for short, full in ((b">001<", GUID), (b">002<", GUID2), (b">003<", UUID(int=3))):
        real = real.replace(short, f">{full}<".encode())
    who = CODEC.parse_who_am_i(real)
    assert (who.user_id, who.business_unit_id, who.organization_id) == (GUID, GUID2, UUID(int=3))


@needs_samples
def test_captured_faults_map_in_both_soap_versions() -> None:
    web = (SAMPLES / "org-web_fault_objectdoesnotexist.php-connector-fixture.response.xml").read_bytes()
    error = parse_fault(500, web, {})
    assert isinstance(error, RecordNotFound)
    assert (error.code, error.fault_type, error.status) == ("0x80040217", "s:Client", 500)
    assert error.message.startswith("contact With Id = 9e9cc03c")
    soap12 = (
        SAMPLES / "org-soap12_fault_retrieve_objectdoesnotexist.uktrade-fixture.response.xml"
    ).read_bytes()
    error = parse_fault(500, soap12, {})
    assert isinstance(error, RecordNotFound)
    assert error.fault_type == "s:Sender"
    assert isinstance(error.__cause__, RecordNotFound)  # the InnerFault
    with pytest.raises(RecordNotFound):
        CODEC.parse_retrieve(soap12)


# --- values ---------------------------------------------------------------------------------------------

ROUND_TRIP: dict[str, Any] = {
    "name": "Contoso <&> ]]> \"' \r\n\t é 🚀",
    "numberofemployees": -(2**31),
    "new_score": 98.5,
    "new_rate": Decimal("-0.000125"),
    "donotemail": False,
    "birthdate": datetime(1980, 5, 17, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-8))),
    "new_externalid": GUID,
    "industrycode": Picklist(2),
    "statuscode": Status(1),
    "revenue": Money("1500.25"),
    "primarycontactid": Lookup("contact", GUID),
    "parentaccountid": AltKey("account", {"accountnumber": "A-1", "new_region": 7}),
    "new_colours": MultiPicklist([1, 3]),
    "new_empty": MultiPicklist([]),
    "telephone1": None,
}


def test_every_value_round_trips() -> None:
    decoded = _target_entity(CODEC.build_create("account", ROUND_TRIP))
    assert decoded == ROUND_TRIP
    refs = _target_entity(
        CODEC.build_create("contact", {"a": Customer("account", GUID), "b": Owner("team", GUID)})
    )
    assert refs == {"a": Lookup("account", GUID), "b": Lookup("team", GUID)}


def test_datetime_goes_out_in_utc_and_naive_is_refused() -> None:
    body = CODEC.build_create(
        "contact", {"birthdate": datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))}
    )
    assert b'i:type="c:dateTime">2023-12-31T23:00:00Z<' in body
    with pytest.raises(EncodingError, match="birthdate"):
        CODEC.build_create("contact", {"birthdate": datetime(2024, 1, 1)})


@pytest.mark.parametrize(
    ("attrs", "error"),
    [
        ({"name": "bell\x07"}, EncodingError),
        ({"name": "\ud800"}, EncodingError),
        ({"bad name": "x"}, EncodingError),
        ({"x": 2**31}, EncodingError),
        ({"x": float("nan")}, EncodingError),
        ({"x": object()}, EncodingError),
        ({"x": AltKey("account", {"accountnumber": "bell\x07"})}, EncodingError),
    ],
)
def test_hostile_values_are_refused_naming_the_column(attrs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        CODEC.build_create("account", attrs)


def test_hostile_names_and_ids_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        CODEC.build_create("account><x", {})
    with pytest.raises(ConfigError):
        CODEC.build_delete("account", "not-a-guid")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        CODEC.build_create("account", {"accountid": GUID}, id=GUID)
    with pytest.raises(ConfigError):
        CODEC.build_upsert("account", {"name": "x"})
    with pytest.raises(ConfigError):
        CODEC.build_execute_multiple([])
    with pytest.raises(ConfigError):
        CODEC.build_fetch("<fetch", page_number=2)


def test_2011_only_values_are_encoding_errors_on_2007() -> None:
    for value in (AltKey("account", {"accountnumber": "A-1"}), MultiPicklist([1])):
        with pytest.raises(EncodingError):
            Codec2007("Contoso").build_create("account", {"x": value})


def test_headers_and_actions() -> None:
    body = Codec2011(caller_id=GUID).build_who_am_i()
    header = etree.fromstring(body, PARSER).find(f"{{{SOAP11_ENV}}}Header")
    assert header is not None
    assert [(etree.QName(h).localname, h.text) for h in header] == [
        ("SdkClientVersion", "9.0.0.0"),
        ("CallerId", str(GUID)),
    ]
    assert (
        etree.fromstring(Codec2011(sdk_version=None).build_who_am_i(), PARSER).find(f"{{{SOAP11_ENV}}}Header")
        is None
    )
    base = "http://schemas.microsoft.com/xrm/2011/Contracts/Services/IOrganizationService/"
    assert [
        Codec2011.soap_action(op) for op in ("Create", "retrieve_multiple", "execute_multiple", "Upsert")
    ] == [
        base + "Create",
        base + "RetrieveMultiple",
        base + "Execute",
        base + "Execute",
    ]
    with pytest.raises(ConfigError):
        Codec2011.soap_action("Drop")


# --- responses and faults -------------------------------------------------------------------------------

REF = '<b:value i:type="a:EntityReference"><a:Id>{}</a:Id><a:LogicalName>account</a:LogicalName></b:value>'
ENV = f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body>{{}}</s:Body></s:Envelope>'
RESULTS = (
    f'<ExecuteResponse xmlns="{XRM2011_SERVICES}">'
    f'<ExecuteResult i:type="a:{{name}}Response" xmlns:a="{XRM2011}" '
    f'xmlns:i="{XSI}"><a:ResponseName>{{name}}</a:ResponseName><a:Results xmlns:b="{COLLECTIONS}">{{results}}'
    "</a:Results></ExecuteResult></ExecuteResponse>"
)


def _kv(key: str, value: str) -> str:
    return f"<a:KeyValuePairOfstringanyType><b:key>{key}</b:key>{value}</a:KeyValuePairOfstringanyType>"


def _guid_value(g: UUID) -> str:
    return f'<b:value i:type="e:guid" xmlns:e="http://schemas.microsoft.com/2003/10/Serialization/">{g}</b:value>'


def _org_fault(code: int, message: str, details: str = "", p: str = "") -> str:
    """The children of an OrganizationServiceFault; ``p`` is the prefix bound to xrm/2011/Contracts."""
    return (
        f"<{p}ErrorCode>{code}</{p}ErrorCode>"
        f'<{p}ErrorDetails xmlns:b="{COLLECTIONS}">{details}</{p}ErrorDetails>'
        f"<{p}Message>{message}</{p}Message><{p}Timestamp>2026-01-01T00:00:00Z</{p}Timestamp>"
        f"<{p}InnerFault i:nil='true'/><{p}TraceText i:nil='true'/>"
    )


def _detail(key: str, value: str) -> str:
    return f"<KeyValuePairOfstringanyType><b:key>{key}</b:key>{value}</KeyValuePairOfstringanyType>"


def _soap_fault(code: int, message: str, details: str = "") -> bytes:
    fault = (
        f"<s:Fault><faultcode>s:Client</faultcode><faultstring>{message}</faultstring><detail>"
        f'<OrganizationServiceFault xmlns="{XRM2011}" xmlns:i="{XSI}">{_org_fault(code, message, details)}'
        "</OrganizationServiceFault></detail></s:Fault>"
    )
    return ENV.format(fault).encode()


def test_create_responses_direct_and_inside_execute() -> None:
    direct = (
        f'<CreateResponse xmlns="{XRM2011_SERVICES}"><CreateResult>{GUID}</CreateResult></CreateResponse>'
    )
    assert CODEC.parse_create(ENV.format(direct).encode()) == GUID
    execute = RESULTS.format(name="Create", results=_kv("id", _guid_value(GUID2)))
    assert CODEC.parse_create(ENV.format(execute).encode()) == GUID2
    with pytest.raises(ProtocolError):
        CODEC.parse_create(ENV.format(direct.replace(str(GUID), "nope")).encode())


def test_upsert_response() -> None:
    target = REF.format(GUID)
    results = _kv(
        "RecordCreated",
        '<b:value i:type="c:boolean" xmlns:c="http://www.w3.org/2001/XMLSchema">true</b:value>',
    )
    body = ENV.format(RESULTS.format(name="Upsert", results=results + _kv("Target", target))).encode()
    result = CODEC.parse_upsert(body)
    assert (result.created, result.id) == (True, GUID)


def test_service_protection_faults_are_busy_with_retry_after_from_error_details() -> None:
    retry = _detail(
        "Retry-After",
        '<b:value i:type="e:duration" xmlns:e="http://schemas.microsoft.com/2003/10/Serialization/">PT4M16.5S</b:value>',
    )
    for code in (-2147015902, -2147015903, -2147015898):
        error = parse_fault(500, _soap_fault(code, "Number of requests exceeded the limit", retry), {})
        assert isinstance(error, ServerBusyError)
        assert error.retry_after == pytest.approx(256.5)
    seconds = _detail(
        "Retry-After", '<b:value i:type="c:int" xmlns:c="http://www.w3.org/2001/XMLSchema">7</b:value>'
    )
    error = parse_fault(500, _soap_fault(-2147015898, "concurrency", seconds), {})
    assert isinstance(error, ServerBusyError)
    assert error.retry_after == 7.0
    error = parse_fault(500, _soap_fault(-2147015902, "requests", seconds), {"Retry-After": "3"})
    assert isinstance(error, ServerBusyError)
    assert error.retry_after == 3.0  # the HTTP header, when there is one, wins


def test_max_batch_size_fault_carries_the_limit() -> None:
    size = _detail(
        "MaxBatchSize", '<b:value i:type="c:int" xmlns:c="http://www.w3.org/2001/XMLSchema">250</b:value>'
    )
    body = _soap_fault(-2147220715, "The number of requests exceeds the maximum batch size", size)
    error = parse_fault(500, body, {})
    assert isinstance(error, BatchTooLargeError)
    assert (error.max_batch_size, error.details) == (250, {"MaxBatchSize": 250})
    with pytest.raises(BatchTooLargeError):
        CODEC.parse_execute_multiple(body, [DeleteRequest("account", GUID)])


def test_duplicate_and_unknown_codes() -> None:
    assert isinstance(
        parse_fault(500, _soap_fault(-2147220937, "Cannot insert duplicate key"), {}), DuplicateRecord
    )
    other = parse_fault(500, _soap_fault(-2147204784, "something else"), {})
    assert type(other) is CrmFault
    assert other.code == "0x80044150"  # type: ignore[union-attr]
    assert parse_fault(200, ENV.format("<x/>").encode(), {}) is None
    assert isinstance(parse_fault(500, b"<html>oops</html>", {}), ProtocolError)
    assert isinstance(parse_fault(503, b"", {"Retry-After": "2"}), ServerBusyError)


def _em_response(items: list[tuple[int, str]], faulted: bool) -> bytes:
    l_ns = "http://schemas.microsoft.com/xrm/2012/Contracts"
    body = "".join(
        f"<l:ExecuteMultipleResponseItem>{inner.format(i=i)}</l:ExecuteMultipleResponseItem>"
        for i, inner in items
    )
    responses = f'<b:value i:type="l:OrganizationResponseCollection" xmlns:l="{l_ns}">{body}</b:value>'
    flag = f'<b:value i:type="c:boolean" xmlns:c="http://www.w3.org/2001/XMLSchema">{str(faulted).lower()}</b:value>'
    results = _kv("IsFaulted", flag) + _kv("Responses", responses)
    return ENV.format(RESULTS.format(name="ExecuteMultiple", results=results)).encode()


def _ok(name: str, results: str = "") -> str:
    return (
        '<l:Fault i:nil="true"/><l:RequestIndex>{i}</l:RequestIndex>'
        f'<l:Response i:type="a:{name}Response"><a:ResponseName>{name}</a:ResponseName>'
        f'<a:Results xmlns:b="{COLLECTIONS}">{results}</a:Results></l:Response>'
    )


def _bad(code: int, message: str) -> str:
    fault = _org_fault(code, message, p="a:")
    return f"<l:Fault>{fault}</l:Fault><l:RequestIndex>{{i}}</l:RequestIndex><l:Response i:nil='true'/>"


REQUESTS = [
    CreateRequest("account", {"name": "A"}),
    CreateRequest("account", {"name": "B"}),
    UpdateRequest("account", GUID, {"name": "C"}),
    DeleteRequest("account", GUID2),
    UpsertRequest("account", {"name": "E"}, keys={"accountnumber": "E"}),
    CreateRequest("account", {"name": "F"}, GUID2),
]


def test_execute_multiple_one_result_per_request_in_order() -> None:
    upsert = _kv(
        "RecordCreated",
        '<b:value i:type="c:boolean" xmlns:c="http://www.w3.org/2001/XMLSchema">false</b:value>',
    )
    upsert += _kv(
        "Target",
        REF.format(GUID),
    )
    items = [
        (5, _ok("Create", _kv("id", _guid_value(GUID2)))),  # out of order on purpose: RequestIndex rules
        (0, _ok("Create", _kv("id", _guid_value(GUID)))),
        (1, _bad(-2147220937, "Cannot insert duplicate key")),
        (2, _ok("Update")),
        (3, _bad(-2147220969, "account With Id = x Does Not Exist")),
        (4, _ok("Upsert", upsert)),
    ]
    results = CODEC.parse_execute_multiple(_em_response(items, True), REQUESTS)
    assert results[0] == GUID
    assert isinstance(results[1], DuplicateRecord)
    assert results[2] is None
    assert isinstance(results[3], RecordNotFound)
    assert results[3].message == "account With Id = x Does Not Exist"
    assert results[4:] == [GUID, GUID2]


def test_execute_multiple_missing_items_follow_the_settings() -> None:
    # ContinueOnError=false, ReturnResponses=true: it stopped at item 1; 2.. never ran.
    items = [(0, _ok("Create", _kv("id", _guid_value(GUID)))), (1, _bad(-2147220937, "dup"))]
    results = CODEC.parse_execute_multiple(_em_response(items, True), REQUESTS, continue_on_error=False)
    assert results[0] == GUID
    assert isinstance(results[1], DuplicateRecord)
    assert all(isinstance(r, ItemNotRunError) for r in results[2:])
    # ContinueOnError=true, ReturnResponses=false: only faults come back; the rest succeeded.
    results = CODEC.parse_execute_multiple(
        _em_response([(3, _bad(-2147220969, "gone"))], True), REQUESTS, return_responses=False
    )
    assert results[:3] == [None, None, None]
    assert isinstance(results[3], RecordNotFound)
    assert results[4:] == [None, GUID2]  # a keyed create's id is its own
    # ContinueOnError=false, ReturnResponses=false: one fault; before it ran, after it did not.
    results = CODEC.parse_execute_multiple(
        _em_response([(2, _bad(-2147220969, "gone"))], True),
        REQUESTS,
        continue_on_error=False,
        return_responses=False,
    )
    assert results[:2] == [None, None]
    assert isinstance(results[2], RecordNotFound)
    assert all(isinstance(r, ItemNotRunError) for r in results[3:])


def test_execute_multiple_bad_answers_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        CODEC.parse_execute_multiple(_em_response([(9, _ok("Update"))], False), REQUESTS)
    with pytest.raises(ProtocolError):
        CODEC.parse_execute_multiple(_em_response([(0, _ok("Create"))], False), REQUESTS)
    with pytest.raises(ProtocolError):
        CODEC.parse_execute_multiple(b"<!DOCTYPE x [<!ENTITY e 'x'>]><x>&e;</x>", REQUESTS)


def test_retrieve_multiple_page() -> None:
    entity = (
        f'<a:Entity><a:Attributes xmlns:b="{COLLECTIONS}">'
        + _kv("name", '<b:value i:type="c:string" xmlns:c="http://www.w3.org/2001/XMLSchema">A</b:value>')
        + f"</a:Attributes><a:Id>{GUID}</a:Id><a:LogicalName>account</a:LogicalName></a:Entity>"
    )
    cookie = '&lt;cookie page="1"&gt;&lt;accountid last="x"/&gt;&lt;/cookie&gt;'
    body = (
        f'<RetrieveMultipleResponse xmlns="{XRM2011_SERVICES}"><RetrieveMultipleResult xmlns:a="{XRM2011}" '
        f'xmlns:i="{XSI}"><a:Entities>{entity}{entity}</a:Entities><a:EntityName>account</a:EntityName>'
        f"<a:MinActiveRowVersion i:nil='true'/><a:MoreRecords>true</a:MoreRecords><a:PagingCookie>{cookie}"
        "</a:PagingCookie><a:TotalRecordCount>-1</a:TotalRecordCount></RetrieveMultipleResult>"
        "</RetrieveMultipleResponse>"
    )
    page = CODEC.parse_retrieve_multiple(ENV.format(body).encode())
    assert page.records == [{"name": "A", "accountid": GUID}] * 2
    assert (page.more_records, page.paging_cookie) == (
        True,
        '<cookie page="1"><accountid last="x"/></cookie>',
    )


def test_new_value_types_validate_and_hash() -> None:
    key = AltKey("account", [("accountnumber", "A-1")])
    assert key == AltKey("account", {"accountnumber": "A-1"})
    assert len({key, AltKey("account", {"accountnumber": "A-1"})}) == 1
    assert MultiPicklist(x for x in (1, 2)).values == (1, 2)
    for bad in (
        lambda: AltKey("bad name", {"a": 1}),
        lambda: AltKey("account", {}),
        lambda: AltKey("a", {"b c": 1}),
    ):
        with pytest.raises(ValueError, match="AltKey"):
            bad()
    for wrong in (lambda: AltKey("account", {"a": True}), lambda: AltKey("account", {"a": [1]})):
        with pytest.raises(TypeError):
            wrong()
    with pytest.raises(TypeError):
        MultiPicklist("12")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32-bit"):
        MultiPicklist([2**31])


def test_retrieve_multiple_through_execute_parses_the_same_page() -> None:
    body = CODEC.build_retrieve_multiple("account", {"name": "A"}, dynamic=True)
    assert _request_params(body)[0] == "RetrieveMultiple"
    assert Codec2011.soap_action("Execute").endswith("/Execute")
    entity = (
        f'<a:Entity><a:Attributes xmlns:b="{COLLECTIONS}">'
        + _kv("name", '<b:value i:type="c:string" xmlns:c="http://www.w3.org/2001/XMLSchema">A</b:value>')
        + f"</a:Attributes><a:Id>{GUID}</a:Id><a:LogicalName>account</a:LogicalName></a:Entity>"
    )
    collection = (
        f'<b:value i:type="a:EntityCollection"><a:Entities>{entity}</a:Entities>'
        "<a:MoreRecords>false</a:MoreRecords>"
        "<a:PagingCookie i:nil='true'/></b:value>"
    )
    answer = ENV.format(RESULTS.format(name="RetrieveMultiple", results=_kv("EntityCollection", collection)))
    page = CODEC.parse_retrieve_multiple(answer.encode())
    assert (page.records, page.more_records, page.paging_cookie) == (
        [{"name": "A", "accountid": GUID}],
        False,
        None,
    )
    with pytest.raises(ConfigError):
        CODEC.build_execute("<request")

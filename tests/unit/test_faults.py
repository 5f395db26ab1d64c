"""parse_fault: CRM 4.0 and 2011 faults, busy answers and garbage become crmload errors, never tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmload.errors import (
    AuthenticationError,
    CrmFault,
    DuplicateRecord,
    InvalidArgument,
    PrivilegeDenied,
    ProtocolError,
    RecordNotFound,
    ServerBusyError,
)
from crmload.soap.faults import parse_fault, parse_retry_after, parse_timespan
from crmload.soap.ns import SOAP11_ENV, SOAP12_ENV

SAMPLES = Path(__file__).resolve().parents[3] / "shared/reference/crm-wsdl/samples"


def crm4_fault(code: str, description: str = "The record does not exist.") -> bytes:
    """A CRM 4.0 ASMX fault as MSDN 'Handling Exceptions' describes it (no capture exists)."""
    return (
        (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP11_ENV}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soap:Body><soap:Fault><faultcode>soap:Server</faultcode>"
            "<faultstring>Server was unable to process request.</faultstring>"
            "<detail><error>\n  <code>{code}</code>\n  <description>{description}</description>\n"
            "  <type>Platform</type>\n</error></detail></soap:Fault></soap:Body></soap:Envelope>"
        )
        .replace("{code}", code)
        .replace("{description}", description)
        .encode()
    )


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("0x80040217", RecordNotFound),
        ("0x80040237", DuplicateRecord),
        ("0x80040220", PrivilegeDenied),
        ("0x80040203", InvalidArgument),
        ("0X8004431A", InvalidArgument),
        ("0x80040216", CrmFault),
        ("0x8004a101", CrmFault),
    ],
)
def test_crm4_faults_by_code(code: str, cls: type[CrmFault]) -> None:
    error = parse_fault(500, crm4_fault(code, "fax With Id = x does not exist"), {})
    assert type(error) is cls
    assert error.code == code.lower().replace("0x", "0x")
    assert error.message == "fax With Id = x does not exist"
    assert error.fault_type == "Platform"
    assert error.status == 500


def test_crm4_busy_code_is_server_busy() -> None:
    error = parse_fault(500, crm4_fault("0x8004418d"), {"retry-after": "7"})
    assert isinstance(error, ServerBusyError)
    assert error.code == "0x8004418d"
    assert error.retry_after == 7.0


def test_2011_web_fixture_decimal_code() -> None:
    path = SAMPLES / "org-web_fault_objectdoesnotexist.php-connector-fixture.response.xml"
    if not path.is_file():
        pytest.skip("reference samples not present")
    error = parse_fault(500, path.read_bytes(), {})
    assert isinstance(error, RecordNotFound)
    assert error.code == "0x80040217"
    assert "Does Not Exist" in error.message


def test_2011_soap12_fixture() -> None:
    path = SAMPLES / "org-soap12_fault_retrieve_objectdoesnotexist.uktrade-fixture.response.xml"
    if not path.is_file():
        pytest.skip("reference samples not present")
    error = parse_fault(500, path.read_bytes(), {})
    assert isinstance(error, RecordNotFound)
    assert error.code == "0x80040217"


def service_protection(retry_after: str, code: int = -2147015902) -> bytes:
    return (
        f'<s:Envelope xmlns:s="{SOAP12_ENV}"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code>'
        '<s:Reason><s:Text xml:lang="en-US">Number of requests exceeded the limit</s:Text></s:Reason>'
        "<s:Detail>"
        '<OrganizationServiceFault xmlns="http://schemas.microsoft.com/xrm/2011/Contracts" '
        'xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        f"<ErrorCode>{code}</ErrorCode>"
        '<ErrorDetails xmlns:b="http://schemas.datacontract.org/2004/07/System.Collections.Generic">'
        "<KeyValuePairOfstringanyType><b:key>Retry-After</b:key>"
        '<b:value i:type="c:duration" xmlns:c="http://schemas.microsoft.com/2003/10/Serialization/">'
        f"{retry_after}</b:value></KeyValuePairOfstringanyType></ErrorDetails>"
        "<Message>Number of requests exceeded the limit</Message></OrganizationServiceFault>"
        "</s:Detail></s:Fault></s:Body></s:Envelope>"
    ).encode()


@pytest.mark.parametrize(("wire", "seconds"), [("PT2M", 120.0), ("00:02:00", 120.0), ("PT0.5S", 0.5)])
def test_service_protection_retry_after_from_detail(wire: str, seconds: float) -> None:
    error = parse_fault(500, service_protection(wire), {})
    assert isinstance(error, ServerBusyError)
    assert error.code == "0x80072322"
    assert error.retry_after == seconds


def test_header_retry_after_wins_over_detail() -> None:
    error = parse_fault(500, service_protection("PT2M"), {"Retry-After": "3"})
    assert isinstance(error, ServerBusyError)
    assert error.retry_after == 3.0


@pytest.mark.parametrize("status", [503, 429])
def test_bare_busy_statuses(status: int) -> None:
    error = parse_fault(status, b"<html><body>Service Unavailable</body></html>", {"Retry-After": "2"})
    assert isinstance(error, ServerBusyError)
    assert (error.status, error.retry_after) == (status, 2.0)
    no_header = parse_fault(status, b"", {})
    assert isinstance(no_header, ServerBusyError)
    assert no_header.retry_after is None


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_timespans() -> None:
    assert parse_timespan("1.00:00:01") == 86401.0
    assert parse_timespan("P1DT1H") == 90000.0
    assert parse_timespan("12") == 12.0
    assert parse_timespan("P") is None
    assert parse_timespan("garbage") is None


def test_401_is_authentication_error() -> None:
    assert isinstance(parse_fault(401, b"", {"WWW-Authenticate": "NTLM"}), AuthenticationError)


def test_200_without_fault_is_none() -> None:
    ok = f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body><CreateResponse/></s:Body></s:Envelope>'.encode()
    assert parse_fault(200, ok, {}) is None
    assert parse_fault(200, b"", {}) is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b"<html>" + b"A" * 100_000 + b"</html>"),
        (500, b"Runtime Error"),
        (500, b""),
        (502, b"Bad Gateway"),
        (404, b"<h1>Not Found</h1>"),
        (500, f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body><x/></s:Body></s:Envelope>'.encode()),
        (500, b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>"),
    ],
)
def test_unparseable_answers_are_short_protocol_errors(status: int, body: bytes) -> None:
    error = parse_fault(status, body, {})
    assert isinstance(error, ProtocolError)
    assert error.status == status
    assert len(error.message) < 400


def test_fault_with_odd_shape_still_maps() -> None:
    body = (
        f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body>'
        "<s:Fault><faultstring>boom</faultstring></s:Fault></s:Body></s:Envelope>"
    )
    error = parse_fault(500, body.encode(), {})
    assert type(error) is CrmFault
    assert error.message == "boom"
    assert error.code is None

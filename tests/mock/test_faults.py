"""CRM-shaped faults: every code the mock answers, the exact envelope shape, and the bad-input corpus.

After each bad input the same server must still answer a good request.
"""

from __future__ import annotations

import http.client
import socket
import uuid
from collections.abc import Iterator

import pytest

from crmload.mock import MockCrm
from tests.mock.helpers import SOAP11, SOAP12, WS, connect, dyn_entity, envelope, post, prop

KEYPROP = prop("KeyProperty", "accountid", str(uuid.uuid4()))
WHOAMI = f'<Execute xmlns="{WS}"><Request xsi:type="WhoAmIRequest" /></Execute>'


@pytest.fixture
def conn(crm: MockCrm) -> Iterator[http.client.HTTPConnection]:
    c = connect(crm)
    yield c
    c.close()


def assert_crm_fault(reply, code: str, *, faultcode: str = "soap:Server") -> None:  # type: ignore[no-untyped-def]
    assert reply.status == 500
    fault = reply.xml.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == faultcode
    assert fault.findtext("faultstring") == "Server was unable to process request."
    error = fault.find("detail/error")
    assert error.findtext("code") == code
    assert error.findtext("type") == "Platform"
    assert error.findtext("description")


def still_serving(crm: MockCrm) -> None:
    c = connect(crm)
    try:
        assert post(c, "Execute", envelope(WHOAMI)).status == 200
    finally:
        c.close()


def test_duplicate_key_0x80040237(conn: http.client.HTTPConnection, crm: MockCrm) -> None:
    body = envelope(f'<Create xmlns="{WS}">{dyn_entity("account", KEYPROP)}</Create>')
    assert post(conn, "Create", body).status == 200
    assert_crm_fault(post(conn, "Create", body), "0x80040237")
    assert crm.stats()["crm_faults_by_code"] == {"0x80040237": 1}


@pytest.mark.parametrize(
    ("op", "body"),
    [
        (
            "Retrieve",
            f'<Retrieve xmlns="{WS}"><entityName>account</entityName><id>{uuid.uuid4()}</id></Retrieve>',
        ),
        ("Delete", f'<Delete xmlns="{WS}"><entityName>account</entityName><id>{uuid.uuid4()}</id></Delete>'),
        (
            "Update",
            f'<Update xmlns="{WS}">{dyn_entity("account", KEYPROP)}</Update>',
        ),
    ],
)
def test_missing_record_0x80040217(conn: http.client.HTTPConnection, op: str, body: str) -> None:
    assert_crm_fault(post(conn, op, envelope(body)), "0x80040217")


@pytest.mark.parametrize(
    "props",
    [
        prop("StringProperty", "nosuchattribute", "x"),
        prop("CrmNumberProperty", "name", "3"),  # name is a String
        prop("CrmNumberProperty", "numberofemployees", "three"),
        prop("CrmMoneyProperty", "creditlimit", "NaN"),
        prop("LookupProperty", "parentaccountid", "not-a-guid", ' type="account"'),
        '<q1:Property xsi:type="q1:NoSuchProperty" Name="name"><q1:Value>x</q1:Value></q1:Property>',
    ],
    ids=["unknown-attribute", "wrong-type", "bad-number", "bad-money", "bad-guid", "unknown-property-type"],
)
def test_invalid_argument_0x80040203(conn: http.client.HTTPConnection, crm: MockCrm, props: str) -> None:
    assert_crm_fault(
        post(conn, "Create", envelope(f'<Create xmlns="{WS}">{dyn_entity("account", props)}</Create>')),
        "0x80040203",
    )
    assert crm.records("account") == []


@pytest.mark.parametrize(
    ("op", "body"),
    [
        ("Create", f'<Create xmlns="{WS}">{dyn_entity("nosuchentity", "")}</Create>'),
        (
            "Update",
            f'<Update xmlns="{WS}">{dyn_entity("account", prop("StringProperty", "name", "n"))}</Update>',
        ),
        ("Execute", f'<Execute xmlns="{WS}"><Request xsi:type="AssignRequest" /></Execute>'),
        ("Delete", f'<Delete xmlns="{WS}"><entityName>account</entityName><id>nope</id></Delete>'),
    ],
    ids=["unknown-entity", "update-without-key", "unsupported-execute", "bad-id"],
)
def test_other_invalid_arguments(conn: http.client.HTTPConnection, op: str, body: str) -> None:
    assert_crm_fault(post(conn, op, envelope(body)), "0x80040203")


@pytest.mark.parametrize("org", [None, "Fabrikam"], ids=["missing-token", "wrong-org"])
def test_auth_token_0x80040220(conn: http.client.HTTPConnection, crm: MockCrm, org: str | None) -> None:
    assert_crm_fault(post(conn, "Execute", envelope(WHOAMI, org=org)), "0x80040220")
    still_serving(crm)


def test_org_name_is_case_insensitive(conn: http.client.HTTPConnection) -> None:
    assert post(conn, "Execute", envelope(WHOAMI, org="CONTOSO")).status == 200


def test_soap12_request_gets_soap12_fault(conn: http.client.HTTPConnection) -> None:
    body = f'<Delete xmlns="{WS}"><entityName>account</entityName><id>{uuid.uuid4()}</id></Delete>'
    r = post(
        conn,
        "Delete",
        envelope(body, soap12=True),
        action=None,
        content_type="application/soap+xml; charset=utf-8",
    )
    assert r.status == 500
    fault = r.xml.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value") == "soap:Receiver"
    assert fault.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text") == "Server was unable to process request."
    assert r.fault_code() == "0x80040217"


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<s:Body><x>&lol3;</x></s:Body></s:Envelope>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&xxe;</s:Body></s:Envelope>'
)


@pytest.mark.parametrize(
    ("op", "body"),
    [
        ("Execute", envelope(WHOAMI)[:-40]),
        ("Execute", envelope(WHOAMI.replace(WS, "http://example.com/not-crm"))),
        ("Execute", b'<s:Envelope xmlns:s="http://example.com/not-soap"><s:Body/></s:Envelope>'),
        ("Frobnicate", envelope(f'<Frobnicate xmlns="{WS}" />')),
        ("Execute", BOMB),
        ("Execute", XXE),
        ("Execute", b""),
        ("Execute", b"\xff\xfe garbage"),
    ],
    ids=[
        "truncated",
        "wrong-namespace",
        "not-an-envelope",
        "unknown-op",
        "entity-bomb",
        "xxe",
        "empty",
        "garbage",
    ],
)
def test_bad_input_gets_client_fault(
    conn: http.client.HTTPConnection, crm: MockCrm, op: str, body: bytes
) -> None:
    r = post(conn, op, body)
    assert_crm_fault(r, "0x80040216", faultcode="soap:Client")
    assert b"root:" not in r.body
    still_serving(crm)


def test_unknown_op_without_action_falls_back_and_faults(conn: http.client.HTTPConnection) -> None:
    r = post(conn, "x", envelope(f'<Frobnicate xmlns="{WS}" />'), action=None)
    assert_crm_fault(r, "0x80040216", faultcode="soap:Client")


def test_fifty_megabyte_body_gets_fault_and_close(crm: MockCrm) -> None:
    c = connect(crm)
    try:
        r = post(c, "Create", b"<" + b"x" * (50 * 1024 * 1024))
        assert_crm_fault(r, "0x80040216", faultcode="soap:Client")
        assert r.headers["connection"] == "close"
        assert b"Maximum request length exceeded" in r.body
    finally:
        c.close()
    assert crm.stats()["faults_by_kind"] == {"body_too_large": 1}
    still_serving(crm)


def test_garbage_request_line(crm: MockCrm) -> None:
    with socket.create_connection(("127.0.0.1", crm.port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 400 ")
    still_serving(crm)

"""Bad input to the Organization service costs one answer, never the connection or the server: each broken
request gets a CRM-shaped fault, and the same keep-alive connection serves the next request."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

from crmload.mock import MockCrm
from tests.mock.org_helpers import create_req, envelope, execute, kv, post, request, string

A = "http://schemas.microsoft.com/xrm/2011/Contracts"
BROKEN = {
    "not_xml": b"<s:Envelope",
    "dtd": b'<!DOCTYPE x [<!ENTITY e "boom">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>',
    "empty_body": envelope(""),
    "no_request": envelope(execute("")),
    "unknown_message": envelope(execute(request("Frobnicate", "Frobnicate", ""))),
    "unknown_entity": envelope(execute(create_req("nosuchentity", ""))),
    "unknown_attribute": envelope(execute(create_req("account", kv("nosuch", string("x"))))),
    "wrong_type": envelope(execute(create_req("account", kv("numberofemployees", string("12"))))),
    "bad_int": envelope(
        execute(
            create_req(
                "account",
                kv(
                    "numberofemployees",
                    '<b:value i:type="c:int" xmlns:c="http://www.w3.org/2001/XMLSchema">x</b:value>',
                ),
            )
        )
    ),
    "untyped_value": envelope(execute(create_req("account", kv("name", "<b:value>x</b:value>")))),
    "bad_guid": envelope(execute(create_req("account", kv("name", string("x")), "not-a-guid"))),
    "no_settings": envelope(
        execute(
            request(
                "ExecuteMultiple",
                "ExecuteMultiple",
                kv("Requests", '<b:value i:type="l:OrganizationRequestCollection"/>'),
            )
        )
    ),
    "soap12_envelope": b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>',
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_request_gets_a_fault_and_the_connection_lives(crm: MockCrm, case: str) -> None:
    parts = urlsplit(crm.base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        bad = post(crm, "Execute", BROKEN[case], conn=conn)
        assert bad.status == 500
        assert bad.error_code() in (-2147220970, -2147220989)  # UnExpected (unreadable), InvalidArgument
        good = post(
            crm, "Execute", envelope(execute(create_req("account", kv("name", string("ok"))))), conn=conn
        )
        assert good.status == 200
    finally:
        conn.close()
    assert crm.stats()["connections_accepted"] == 1
    assert [a["name"] for a in crm.records("account")] == ["ok"]

"""The CreateResponse fast path agrees with the full lxml parse, and steps aside for anything unusual."""

from __future__ import annotations

from uuid import UUID

import pytest

from crmload.errors import CrmFault, ProtocolError
from crmload.soap.codec2007 import _CREATE_FAST, Codec2007

GUID = "7e458bef-bc2a-49bb-9026-4633af0a0fd8"
WS = "http://schemas.microsoft.com/crm/2007/WebServices"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
RESULT = f'<CreateResponse xmlns="{WS}"><CreateResult>{GUID}</CreateResult></CreateResponse>'

ACCEPTED = [
    # What the mock (and CRM 4.0's ASMX) send.
    f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP}" '
    f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soap:Body>{RESULT}</soap:Body></soap:Envelope>',
    f'<Envelope xmlns="{SOAP}"><Body>{RESULT}</Body></Envelope>',
    f'<s:Envelope xmlns:s="{SOAP}">\n  <s:Header/>\n  <s:Body>{RESULT}</s:Body>\n</s:Envelope>\n',
    f'<s:Envelope xmlns:s="{SOAP}"><s:Header></s:Header><s:Body>{RESULT}</s:Body></s:Envelope>',
]

DECLINED = [
    # The prefix is bound to another namespace: not a SOAP 1.1 envelope at all.
    f'<soap:Envelope xmlns:soap="urn:other" xmlns:x="{SOAP}"><soap:Body>{RESULT}</soap:Body></soap:Envelope>',
    # The 2006 namespace, mismatched prefixes, extra content, a DOCTYPE, a non-namespace attribute.
    f'<s:Envelope xmlns:s="{SOAP}"><s:Body>{RESULT.replace("2007", "2006")}</s:Body></s:Envelope>',
    f'<s:Envelope xmlns:s="{SOAP}"><s:Body>{RESULT}</soap:Body></s:Envelope>',
    f'<s:Envelope xmlns:s="{SOAP}"><s:Body><x/>{RESULT}</s:Body></s:Envelope>',
    f'<!DOCTYPE x><s:Envelope xmlns:s="{SOAP}"><s:Body>{RESULT}</s:Body></s:Envelope>',
    f'<s:Envelope a="1" xmlns:s="{SOAP}"><s:Body>{RESULT}</s:Body></s:Envelope>',
    # A fault whose detail happens to hold a CreateResult-looking element.
    f'<s:Envelope xmlns:s="{SOAP}"><s:Body><s:Fault><faultcode>s:Server</faultcode>'
    "<faultstring>x</faultstring>"
    f"<detail><error><code>0x80040216</code><description>{RESULT}</description></error></detail></s:Fault>"
    "</s:Body></s:Envelope>",
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_fast_path_matches_and_agrees_with_lxml(body: str) -> None:
    raw = body.encode()
    assert _CREATE_FAST.match(raw) is not None
    slow = Codec2007._guid(Codec2007._result(raw), "CreateResult", "id")
    assert Codec2007("Contoso").parse_create(raw) == slow == UUID(GUID)


@pytest.mark.parametrize("body", DECLINED)
def test_fast_path_declines_unusual_shapes(body: str) -> None:
    assert _CREATE_FAST.match(body.encode()) is None


def test_declined_fault_is_still_raised_by_the_full_parse() -> None:
    with pytest.raises(CrmFault):
        Codec2007("Contoso").parse_create(DECLINED[-1].encode())


def test_declined_wrong_namespace_is_not_trusted() -> None:
    with pytest.raises(ProtocolError):
        Codec2007("Contoso").parse_create(DECLINED[0].encode())

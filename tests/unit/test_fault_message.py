"""Issue 16 item 15: a CRM 4.0 fault with a non-hex code keeps its message (faultstring), not "CRM fault"."""

from __future__ import annotations

import pytest

from crmload.errors import CrmFault
from crmload.soap.faults import parse_fault
from crmload.soap.ns import SOAP11_ENV


def _fault(error: str, faultstring: str = "Server was unable to process request.") -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode>'
        f"<faultstring>{faultstring}</faultstring><detail>{error}</detail></soap:Fault></soap:Body>"
        "</soap:Envelope>"
    ).encode()


@pytest.mark.parametrize(
    "error",
    [
        "<error><code>SomeCode</code><description></description></error>",
        "<error><code>Zork</code></error>",
        "<error><code>0x8004zzzz</code><description/><type>Platform</type></error>",
    ],
)
def test_non_hex_code_keeps_the_faultstring(error: str) -> None:
    fault = parse_fault(500, _fault(error, "Object reference not set to an instance of an object."), {})
    assert isinstance(fault, CrmFault)
    assert str(fault) == "Object reference not set to an instance of an object."
    assert fault.code is not None


def test_description_still_wins_over_the_generic_faultstring() -> None:
    fault = parse_fault(
        500, _fault("<error><code>Zork</code><description>The thing broke</description></error>"), {}
    )
    assert str(fault) == "The thing broke"
    assert isinstance(fault, CrmFault)
    assert fault.code == "Zork"


def test_no_text_at_all_names_the_code() -> None:
    body = (
        f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode>'
        "<detail><error><code>Zork</code></error></detail></soap:Fault></soap:Body></soap:Envelope>"
    ).encode()
    fault = parse_fault(500, body, {})
    assert str(fault) == "CRM fault Zork"

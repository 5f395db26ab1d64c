"""Answers classified by what they prove: never applied (run-level) versus maybe applied (in doubt)."""

from __future__ import annotations

import pytest

from crmload.errors import (
    AuthenticationError,
    ConnectError,
    CrmFault,
    NotAppliedError,
    PrivilegeDenied,
    ProtocolError,
    ResponseLostError,
    RetryExhaustedError,
    ServerBusyError,
    TlsError,
)
from crmload.load.send import classify, proves_not_applied
from crmload.soap.faults import not_soap_answer, parse_fault
from crmload.soap.ns import SOAP11_ENV

LOGIN = b"<!DOCTYPE html><html><body><form action='/adfs/ls'>Sign in</form></body></html>"
ENVELOPE_START = f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body><CreateResponse>'.encode()


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (302, b"", {"Location": "https://sts/adfs/ls"}),
        (301, b"moved", {"location": "https://crm/"}),
        (307, b"", {}),
        (404, b"Not Found", {}),
        (405, b"Not allowed", {}),
        (400, b"<h1>Bad Request</h1>", {}),
        (500, LOGIN, {"Content-Type": "text/html"}),
        (500, b"Runtime Error", {}),
    ],
)
def test_answers_crm_never_processed_are_not_applied(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    error = parse_fault(status, body, headers)
    assert isinstance(error, NotAppliedError)
    assert isinstance(error, ProtocolError)  # callers that catch ProtocolError still catch it
    assert error.status == status
    assert "nothing was applied" in error.message
    if 300 <= status < 400:
        assert error.location == (headers.get("Location") or headers.get("location"))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, b"<html>Bad Gateway</html>"),  # a gateway may have forwarded it: proves nothing
        (504, b"Gateway Timeout"),
        (500, b""),
        (500, ENVELOPE_START),  # a broken envelope came from the web service itself
    ],
)
def test_answers_that_prove_nothing_stay_maybe_applied(status: int, body: bytes) -> None:
    error = parse_fault(status, body, {})
    assert type(error) is ProtocolError


def test_soap_faults_and_busy_answers_keep_their_meaning() -> None:
    fault = (
        f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body><s:Fault><faultcode>s:Server</faultcode>'
        "<detail><error><code>0x80040220</code><description>no privilege</description></error></detail>"
        "</s:Fault></s:Body></s:Envelope>"
    ).encode()
    assert type(parse_fault(500, fault, {})) is PrivilegeDenied
    assert type(parse_fault(503, b"<html>busy</html>", {})) is ServerBusyError
    assert type(parse_fault(429, b"", {})) is ServerBusyError
    assert type(parse_fault(401, b"<html>401</html>", {})) is AuthenticationError


def test_a_200_login_page_is_not_applied_but_a_truncated_envelope_is_not_known() -> None:
    assert isinstance(not_soap_answer(200, LOGIN, {"Content-Type": "text/html"}), NotAppliedError)
    assert not_soap_answer(200, ENVELOPE_START, {}) is None
    assert not_soap_answer(200, b"  ", {}) is None


@pytest.mark.parametrize(
    ("error", "keyed", "verdict", "not_applied"),
    [
        (NotAppliedError("HTTP 404", status=404), False, ("fatal", "send"), True),
        (TlsError("wrong version"), False, ("fatal", "connect"), True),
        (ProtocolError("HTTP 502", status=502), False, ("in_doubt", "send"), False),
        (ResponseLostError("reset"), False, ("in_doubt", "send"), False),
        (AuthenticationError("401"), False, ("fatal", "send"), True),
        (RetryExhaustedError("gave up", last=ConnectError("refused")), False, ("fatal", "connect"), True),
        (CrmFault("bad value", code="0x80040203"), True, ("reject", "send"), True),
    ],
)
def test_loader_verdicts(error: Exception, keyed: bool, verdict: tuple[str, str], not_applied: bool) -> None:
    assert classify(error, keyed=keyed, mode="create") == verdict
    assert proves_not_applied(error) is not_applied

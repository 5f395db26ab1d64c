"""Envelopes and ``OrganizationServiceFault`` rendering for the mock's Organization service (2011+) endpoint.

SOAP 1.1 faults (``/web``) are shaped byte for byte like the real ``org-web_fault_*`` capture::

    <s:Envelope xmlns:s="..."><s:Body><s:Fault><faultcode>s:Client</faultcode>
    <faultstring xml:lang="en-GB">MSG</faultstring><detail>
    <OrganizationServiceFault xmlns="xrm/2011/Contracts" xmlns:i="XSI"><ErrorCode>-2147220969</ErrorCode>
    <ErrorDetails xmlns:a="...Generic"/><Message>MSG</Message>
    <Timestamp>2016-02-17T08:55:04.9625806Z</Timestamp><InnerFault i:nil="true"/><TraceText i:nil="true"/>
    </OrganizationServiceFault></detail></s:Fault></s:Body></s:Envelope>

SOAP 1.2 faults (``Organization.svc``) follow the ``org-soap12_fault_*`` fixture: ``s:Code/s:Value s:Sender``,
``s:Reason/s:Text``, a WS-Addressing ``<Op>OrganizationServiceFaultFault`` action, and
``InnerFault`` holding a nested copy of the fault. The mock's codes are the 2007 endpoint's hex codes,
rendered as signed ints.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from xml.sax.saxutils import escape

from crmload.mock.envelope import SoapFault
from crmload.soap import ns

__all__ = [
    "CODE_MAX_BATCH",
    "OrgFault",
    "envelope11",
    "envelope12",
    "fault_children",
    "fault_envelope",
    "signed_code",
    "timestamp",
]

#: The mock's MaxBatchSize fault code (Microsoft documents only the ``ErrorDetails["MaxBatchSize"]`` entry,
#: not a code; clients must key on that entry). InvalidArgument is what the mock uses for bad requests.
CODE_MAX_BATCH = "0x80040203"

_GENERIC = ns.COLLECTIONS
_SERIALIZATION_TYPES = frozenset({"duration", "guid"})


class OrgFault(SoapFault):
    """A fault with ``ErrorDetails``: ``details`` maps a key to (xsd type local name, text), e.g.
    ``{"MaxBatchSize": ("int", "1000")}``."""

    def __init__(
        self,
        code: str,
        description: str,
        *,
        kind: str = "",
        details: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(code, description, client=True, kind=kind)
        self.details = dict(details or {})


def signed_code(code: str) -> int:
    """Return the signed 32-bit int of a hex code (``0x80040217`` -> ``-2147220969``), as 2011+ sends it."""
    value = int(code, 16)
    return value - (1 << 32) if value >= (1 << 31) else value


def timestamp(now: dt.datetime | None = None) -> str:
    """Return a .NET round-trip UTC timestamp with 7 fractional digits, as the real faults carry."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}0Z"


def _details(fault: SoapFault, prefix: str) -> str:
    details: Mapping[str, tuple[str, str]] = getattr(fault, "details", {})
    if not details:
        return f'<ErrorDetails xmlns:{prefix}="{_GENERIC}"/>'
    # A TimeSpan (Retry-After) is a DataContract ``duration``: ``i:type="e:duration"`` in the Serialization
    # namespace; everything else is an XML Schema type.
    items = "".join(
        f"<KeyValuePairOfstringanyType><{prefix}:key>{escape(k)}</{prefix}:key>"
        + (
            f'<{prefix}:value i:type="e:{t}" xmlns:e="{ns.SERIALIZATION}">{escape(v)}</{prefix}:value>'
            if t in _SERIALIZATION_TYPES
            else f'<{prefix}:value i:type="x:{t}" xmlns:x="{ns.XSD}">{escape(v)}</{prefix}:value>'
        )
        + "</KeyValuePairOfstringanyType>"
        for k, (t, v) in details.items()
    )
    return f'<ErrorDetails xmlns:{prefix}="{_GENERIC}">{items}</ErrorDetails>'


def fault_children(fault: SoapFault, stamp: str, *, prefix: str = "a", inner: bool = False) -> str:
    """Return the children of an OrganizationServiceFault (default namespace xrm/2011/Contracts; ``i`` bound).

    Args:
        prefix: the prefix bound to the Collections.Generic namespace on ``ErrorDetails``.
        inner: put a nested copy of the fault in ``InnerFault`` (the SOAP 1.2 fixture does), else nil.
    """
    msg = escape(fault.description)
    head = (
        f"<ErrorCode>{signed_code(fault.code)}</ErrorCode>{_details(fault, prefix)}<Message>{msg}</Message>"
        f"<Timestamp>{stamp}</Timestamp>"
    )
    nested = (
        f'<InnerFault>{head}<InnerFault i:nil="true"/><TraceText i:nil="true"/></InnerFault>'
        if inner
        else '<InnerFault i:nil="true"/>'
    )
    return f'{head}{nested}<TraceText i:nil="true"/>'


def envelope11(body: str) -> bytes:
    """Wrap a body fragment in a SOAP 1.1 envelope, as WCF's basicHttpBinding writes it (no declaration)."""
    return f'<s:Envelope xmlns:s="{ns.SOAP11_ENV}"><s:Body>{body}</s:Body></s:Envelope>'.encode()


def envelope12(body: str, action: str, relates_to: str | None) -> bytes:
    """Wrap a body fragment in a SOAP 1.2 envelope with the WS-Addressing reply headers."""
    relates = f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>" if relates_to else ""
    return (
        f'<s:Envelope xmlns:s="{ns.SOAP12_ENV}" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header>'
        f'<a:Action s:mustUnderstand="1">{escape(action)}</a:Action>{relates}</s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def fault_envelope(fault: SoapFault, soap_ns: str, op: str, relates_to: str | None = None) -> bytes:
    """Render a whole-request fault in the SOAP 1.1 (``/web``) or SOAP 1.2 form."""
    stamp = timestamp()
    msg = escape(fault.description)
    osf = f'<OrganizationServiceFault xmlns="{ns.XRM2011}" xmlns:i="{ns.XSI}">'
    if soap_ns == ns.SOAP12_ENV:
        detail = osf + fault_children(fault, stamp, prefix="b", inner=True) + "</OrganizationServiceFault>"
        body = (
            "<s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code><s:Reason>"
            f'<s:Text xml:lang="en-GB">{msg}</s:Text></s:Reason><s:Detail>{detail}</s:Detail></s:Fault>'
        )
        action = ns.ACTION2011 + (op or "Execute") + "OrganizationServiceFaultFault"
        return envelope12(body, action, relates_to)
    detail = osf + fault_children(fault, stamp) + "</OrganizationServiceFault>"
    body = (
        f'<s:Fault><faultcode>s:Client</faultcode><faultstring xml:lang="en-GB">{msg}</faultstring>'
        f"<detail>{detail}</detail></s:Fault>"
    )
    return envelope11(body)


def new_message_id() -> str:
    """Return a WS-Addressing message id (urn:uuid)."""
    return f"urn:uuid:{uuid.uuid4()}"

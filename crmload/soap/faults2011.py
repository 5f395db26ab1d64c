"""Organization-service faults (``OrganizationServiceFault``) mapped to crmload's error tree.

The same classes mean the same thing on both endpoints: ObjectDoesNotExist is ``RecordNotFound``, a
duplicate key is ``DuplicateRecord``, a service-protection code (-2147015902 requests, -2147015903
execution time, -2147015898 concurrency) is ``ServiceProtectionError`` (a ``ServerBusyError`` naming the
``facet``) with ``retry_after`` from ``ErrorDetails["Retry-After"]`` (an ``e:duration`` TimeSpan, or seconds,
parsed defensively; the HTTP header wins when there is one), and
``ErrorDetails["MaxBatchSize"]`` makes a ``BatchTooLargeError``. Both SOAP 1.1 (``/web``: faultcode,
faultstring, detail) and SOAP 1.2 (``Organization.svc``: Code, Reason, Detail) envelopes are read; anything
else falls back to ``faults.parse_fault``. Nothing here raises: an unreadable fault is a ``ProtocolError``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from lxml import etree

from crmload.errors import (
    BUSY_CODES,
    SERVICE_PROTECTION_FACETS,
    AuthenticationError,
    BatchTooLargeError,
    CrmLoadError,
    ProtocolError,
    ServerBusyError,
    ServiceProtectionError,
    fault_for_code,
)
from crmload.soap import faults
from crmload.soap.ns import SOAP11_ENV, SOAP12_ENV, XRM2011, XSI
from crmload.soap.values2011 import decode_pairs

__all__ = ["error_from_org_fault", "parse_fault"]

log = logging.getLogger(__name__)

_A = "{" + XRM2011 + "}"
_NIL = "{" + XSI + "}nil"
_MAX_MESSAGE = 500


def _child(el: etree._Element, tag: str) -> etree._Element | None:
    found = el.find(tag)
    return None if found is None or found.get(_NIL) == "true" else found


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return max(0.0, float(value))
    if isinstance(value, str):
        return faults.parse_timespan(value)
    return None


def _details(fault: etree._Element) -> dict[str, object]:
    holder = _child(fault, _A + "ErrorDetails")
    if holder is None:
        return {}
    try:
        return decode_pairs(holder)
    except ProtocolError as exc:  # one odd detail must not hide the fault itself
        log.debug("unreadable ErrorDetails: %s", exc)
        return {}


def _lookup(details: Mapping[str, object], name: str) -> object:
    lname = name.lower()
    return next((v for k, v in details.items() if k.lower() == lname), None)


def error_from_org_fault(
    fault: etree._Element,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    fault_type: str | None = None,
    depth: int = 0,
) -> CrmLoadError:
    """Return the crmload error for one ``OrganizationServiceFault`` element (a SOAP detail or a batch item).

    ``status`` and ``headers`` are the HTTP answer's, when the fault came as one; a batch item has neither.
    """
    code_el = _child(fault, _A + "ErrorCode")
    code = faults._hex_code(code_el.text if code_el is not None else None)
    message_el = _child(fault, _A + "Message")
    message = ((message_el.text or "").strip() if message_el is not None else "") or "CRM fault"
    message = message[:_MAX_MESSAGE]
    details = _details(fault)
    error: CrmLoadError
    facet = SERVICE_PROTECTION_FACETS.get(code or "")
    if facet is not None:
        # The header wins, as for any busy answer: whole seconds rounded up never wait too little.
        retry_after = faults.parse_retry_after(faults._header(headers or {}, "Retry-After"))
        if retry_after is None:
            retry_after = _seconds(_lookup(details, "Retry-After"))
        error = ServiceProtectionError(
            message, facet=facet, status=status, code=code, retry_after=retry_after
        )
    elif code in BUSY_CODES or status in (429, 503):
        header = faults._header(headers or {}, "Retry-After")
        retry_after = faults.parse_retry_after(header)
        if retry_after is None:
            retry_after = _seconds(_lookup(details, "Retry-After"))
        error = ServerBusyError(message, status=status, code=code, retry_after=retry_after)
    elif status == 401:
        error = AuthenticationError(f"HTTP 401: {message}")
    elif _lookup(details, "MaxBatchSize") is not None:
        size = _lookup(details, "MaxBatchSize")
        limit = size if isinstance(size, int) and not isinstance(size, bool) else None
        if isinstance(size, str) and size.strip().isdigit():
            limit = int(size)
        error = BatchTooLargeError(
            message, max_batch_size=limit, code=code, fault_type=fault_type, status=status, details=details
        )
    else:
        error = fault_for_code(code)(
            message, code=code, fault_type=fault_type, status=status, details=details
        )
    inner = _child(fault, _A + "InnerFault")
    if inner is not None and depth < 8:  # nested copies; bounded against a hostile answer
        error.__cause__ = error_from_org_fault(inner, depth=depth + 1)
    return error


def _soap_fault(body: bytes) -> tuple[etree._Element, str] | None:
    if body.lstrip()[:1] != b"<":
        return None
    try:
        root = faults.parse_xml(body)
    except ProtocolError:
        return None
    ns = etree.QName(root).namespace if isinstance(root.tag, str) else None
    if ns not in (SOAP11_ENV, SOAP12_ENV) or etree.QName(root).localname != "Envelope":
        return None
    soap_body = root.find(f"{{{ns}}}Body")
    fault = soap_body.find(f"{{{ns}}}Fault") if soap_body is not None else None
    return (fault, ns) if fault is not None else None


def _fault_type(fault: etree._Element, ns: str) -> str | None:
    code = fault.find("faultcode") if ns == SOAP11_ENV else fault.find(f"{{{ns}}}Code/{{{ns}}}Value")
    return (code.text or "").strip() or None if code is not None else None


def parse_fault(status: int, body: bytes, headers: Mapping[str, str]) -> CrmLoadError | None:
    """Return the crmload error an Organization-service answer means, or None for a 200 without a fault.

    Same contract as ``faults.parse_fault``; an ``OrganizationServiceFault`` is read with its details.
    """
    found = _soap_fault(body)
    if found is not None:
        fault, ns = found
        detail = fault.find("detail") if ns == SOAP11_ENV else fault.find(f"{{{ns}}}Detail")
        org = detail.find(_A + "OrganizationServiceFault") if detail is not None else None
        if org is not None:
            try:
                return error_from_org_fault(
                    org, status=status, headers=headers, fault_type=_fault_type(fault, ns)
                )
            except Exception as exc:  # a fault we cannot read must still become a crmload error
                log.debug("unreadable OrganizationServiceFault: %s", exc)
                return ProtocolError(
                    f"HTTP {status}: unreadable SOAP fault: {faults.excerpt(body)}", status=status
                )
    return faults.parse_fault(status, body, headers)

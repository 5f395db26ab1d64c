"""SOAP faults and HTTP statuses of a CRM answer, mapped to crmload's error tree.

``parse_fault`` understands CRM 4.0 ASMX faults (``detail/error/{description, code, type}``, hex codes),
CRM 2011+ ``OrganizationServiceFault`` (signed decimal ``ErrorCode``; ``ErrorDetails`` with ``Retry-After``),
SOAP 1.1 and SOAP 1.2 envelopes, and the bare HTTP answers IIS gives (503 queue full, 429, 401). It never
raises: anything it cannot read becomes a ``ProtocolError`` with a short excerpt, never the whole body.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import timezone

from lxml import etree

from crmload.errors import (
    BUSY_CODES,
    AuthenticationError,
    CrmLoadError,
    NotAppliedError,
    ProtocolError,
    ServerBusyError,
    fault_for_code,
)
from crmload.soap.ns import SOAP11_ENV, SOAP12_ENV

__all__ = ["PARSER", "not_soap_answer", "parse_fault", "parse_retry_after", "parse_timespan", "parse_xml"]

log = logging.getLogger(__name__)

#: The one parser for every response: no entities, no network, no multi-gigabyte trees.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False)

_EXCERPT = 200


def excerpt(body: bytes) -> str:
    """Return the start of ``body`` for an error message: decoded leniently, one line, truncated."""
    text = body[:_EXCERPT].decode("utf-8", "replace")
    text = " ".join(text.split())
    return text + ("…" if len(body) > _EXCERPT else "")


def parse_xml(body: bytes) -> etree._Element:
    """Parse a response body with the safe parser; ProtocolError (with an excerpt) if it is not XML."""
    if not body:
        raise ProtocolError("empty response body where XML was expected")
    try:
        root = etree.fromstring(body, PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise ProtocolError(f"response is not well-formed XML ({exc}): {excerpt(body)}") from None
    # CRM never sends a DTD. Refusing one outright beats half-resolved entity references in values.
    if root.getroottree().docinfo.doctype:
        raise ProtocolError("response carries a DOCTYPE; refused (CRM never sends one)")
    return root


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _find(el: etree._Element, *names: str) -> etree._Element | None:
    """Depth-first search for the first element whose local name is one of ``names`` (namespace-agnostic)."""
    for node in el.iter():
        if isinstance(node.tag, str) and etree.QName(node).localname in names:
            return node
    return None


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    text = "".join(el.itertext()).strip()
    return text or None


# --- Retry-After -----------------------------------------------------------------------------------------

_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)")
_DURATION = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


def parse_timespan(text: str) -> float | None:
    """Return seconds from a .NET TimeSpan (``00:02:00``, ``1.00:00:00``) or an xs:duration (``PT2M``)."""
    text = text.strip()
    m = _TIMESPAN.fullmatch(text)
    if m:
        days, hours, minutes, seconds = m.groups()
        return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    m = _DURATION.fullmatch(text)
    if m and text not in ("P", "PT"):
        parts = {k: float(v) for k, v in m.groupdict().items() if v}
        return (
            parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
        )
    try:
        return max(0.0, float(text))
    except ValueError:
        return None


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Return seconds to wait from an HTTP Retry-After header (delta-seconds or HTTP-date), else None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lname = name.lower()
    for key, value in headers.items():
        if key.lower() == lname:
            return value
    return None


# --- faults ----------------------------------------------------------------------------------------------


def _hex_code(raw: str | None) -> str | None:
    """Normalise a CRM code to CRM 4.0's ``0x8004xxxx`` form; 2011+ sends it as a signed decimal int."""
    if raw is None:
        return None
    raw = raw.strip()
    try:
        number = int(raw, 16) if raw.lower().startswith("0x") else int(raw)
    except ValueError:
        try:
            number = int(raw, 16)  # CRM 4.0 documents some codes without the prefix, e.g. "8004A101"
        except ValueError:
            return raw
    return f"0x{number & 0xFFFFFFFF:08x}"


def _detail_retry_after(fault: etree._Element) -> float | None:
    """Return the ``Retry-After`` entry of an OrganizationServiceFault's ``ErrorDetails``, in seconds."""
    details = _find(fault, "ErrorDetails")
    if details is None:
        return None
    for pair in details:
        if not isinstance(pair.tag, str):
            continue
        key = value = None
        for part in pair:
            if _local(part) == "key":
                key = _text(part)
            elif _local(part) == "value":
                value = _text(part)
        if key is not None and key.lower() == "retry-after" and value is not None:
            return parse_timespan(value)
    return None


def _from_fault(fault: etree._Element, status: int, headers: Mapping[str, str]) -> CrmLoadError:
    error = _find(fault, "error")  # CRM 4.0: detail/error/{description, code, type}
    if error is not None and _find(error, "code") is not None:
        code = _hex_code(_text(_find(error, "code")))
        # An empty description (seen with non-hex codes) must not drop the faultstring, often the only text.
        message = (
            _text(_find(error, "description"))
            or _text(_find(fault, "faultstring", "Text"))
            or f"CRM fault {code or ''}".strip()
        )
        fault_type = _text(_find(error, "type"))
    else:
        org_fault = _find(fault, "OrganizationServiceFault")
        code_el = _find(org_fault, "ErrorCode") if org_fault is not None else None
        code = _hex_code(_text(code_el))
        message = (
            (_text(_find(org_fault, "Message")) if org_fault is not None else None)
            or _text(_find(fault, "faultstring", "Text"))
            or "SOAP fault"
        )
        fault_type = _text(_find(fault, "faultcode", "Value"))
    message = message[:500]
    if code in BUSY_CODES or status in (429, 503):
        retry_after = parse_retry_after(_header(headers, "Retry-After")) or _detail_retry_after(fault)
        return ServerBusyError(message, status=status, code=code, retry_after=retry_after)
    if status == 401:
        return AuthenticationError(f"HTTP 401: {message}")
    return fault_for_code(code)(message, code=code, fault_type=fault_type, status=status)


def _soap_fault(root: etree._Element) -> etree._Element | None:
    if root.tag not in (f"{{{SOAP11_ENV}}}Envelope", f"{{{SOAP12_ENV}}}Envelope"):
        return None
    ns = etree.QName(root).namespace
    body = root.find(f"{{{ns}}}Body")
    if body is None:
        return None
    return body.find(f"{{{ns}}}Fault")


def parse_fault(status: int, body: bytes, headers: Mapping[str, str]) -> CrmLoadError | None:
    """Return the crmload error that an HTTP answer means, or None for a 200 without a SOAP fault.

    Args:
        status: the HTTP status code.
        body: the raw response body (may be empty or not XML).
        headers: response headers; names are matched case-insensitively.
    """
    fault = None
    if body.lstrip()[:1] == b"<":
        try:
            root = parse_xml(body)
        except ProtocolError:
            root = None
        if root is not None:
            fault = _soap_fault(root)
    if fault is not None:
        try:
            return _from_fault(fault, status, headers)
        except Exception as exc:  # a fault we cannot read must still become a crmload error
            log.debug("unreadable SOAP fault: %s", exc)
            return ProtocolError(f"HTTP {status}: unreadable SOAP fault: {excerpt(body)}", status=status)
    if status in (429, 503):
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
        return ServerBusyError(f"HTTP {status}: server busy", status=status, retry_after=retry_after)
    if status == 401:
        return AuthenticationError("HTTP 401: the server refused the credentials")
    if status == 200:
        return None
    return _unprocessed(status, body, headers)


# --- answers CRM never processed ----------------------------------------------------------------------------

_SOAP_NAMESPACES = (SOAP11_ENV.encode(), SOAP12_ENV.encode())
#: The root element's start tag, its namespace declaration included, sits within this many bytes.
_SNIFF = 2048


def _looks_soap(body: bytes) -> bool:
    head = body[:_SNIFF]
    return b"Envelope" in head and any(namespace in head for namespace in _SOAP_NAMESPACES)


def not_soap_answer(status: int, body: bytes, headers: Mapping[str, str]) -> NotAppliedError | None:
    """Return ``NotAppliedError`` when ``body`` is not SOAP at all (an HTML login or error page), else None.

    For a 200 whose body failed to parse: a truncated or odd envelope stays a ``ProtocolError`` (the request
    may have been applied); a page that never was an envelope proves the web service never saw the request.
    An empty body proves nothing and gives None.
    """
    if not body.strip() or _looks_soap(body):
        return None
    kind = _header(headers, "Content-Type") or "no content type"
    return NotAppliedError(
        f"HTTP {status} answered with a non-SOAP body ({kind.split(';')[0]}), such as a login or error page: "
        f"the CRM web service never processed the request, nothing was applied; check the URL and the "
        f"authentication: {excerpt(body)}",
        status=status,
    )


def _unprocessed(status: int, body: bytes, headers: Mapping[str, str]) -> ProtocolError:
    """Classify a non-200 answer without a SOAP fault by what it proves about the request."""
    if 300 <= status < 400:
        location = _header(headers, "Location")
        return NotAppliedError(
            f"HTTP {status} redirect to {location or 'an unnamed location'}: the URL does not reach the CRM "
            "web service, nothing was applied; use the final URL (crmload never follows redirects with a "
            "request body)",
            status=status,
            location=location,
        )
    if 400 <= status < 500:
        return NotAppliedError(
            f"HTTP {status} before any SOAP processing: nothing was applied; check the URL "
            f"(the path of CrmService.asmx): {excerpt(body)}",
            status=status,
        )
    # A gateway's 502/504 may come after the request reached CRM: that proves nothing, so maybe applied.
    if status not in (502, 504):
        unprocessed = not_soap_answer(status, body, headers)
        if unprocessed is not None:
            return unprocessed
    return ProtocolError(f"HTTP {status} without a SOAP fault: {excerpt(body)}", status=status)

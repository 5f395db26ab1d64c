"""SOAP envelopes for the mock: safe parsing, QName helpers, response and CRM 4.0 fault rendering.

Faults the mock returns (``detail/error/code``; see docs/INTERNALS.md "Mock"):

=============  ===========  ==========================================================================
code           faultcode    when
=============  ===========  ==========================================================================
0x80040217     Server       Update, Delete or Retrieve of a record that does not exist
0x80040237     Server       Create with a primary key that already exists
0x80040203     Server       unknown entity or attribute, wrong property type, bad value, missing key,
                            unsupported Execute request or query operator, a number, date or decimal
                            places outside the attribute's limits (``crmload.limits``)
0x80044331     Server       StringLengthTooLong: a string longer than the attribute's MaxLength
0x80040220     Server       missing CrmAuthenticationToken or a different OrganizationName
0x80040216     Client       malformed XML, DTD/entities, wrong envelope namespace, unknown operation,
                            body over the size limit, chunked or otherwise unreadable request
=============  ===========  ==========================================================================
"""

from __future__ import annotations

import threading
from xml.sax.saxutils import escape

from lxml import etree

from crmload.soap import ns

__all__ = [
    "CODE_AUTH",
    "CODE_DUPLICATE",
    "CODE_INVALID",
    "CODE_NOT_FOUND",
    "CODE_STRING_TOO_LONG",
    "CODE_UNEXPECTED",
    "SoapFault",
    "attr_qname",
    "child",
    "envelope",
    "fault_body",
    "parse_xml",
    "resolve_qname",
    "text_of",
]

CODE_NOT_FOUND = "0x80040217"
CODE_DUPLICATE = "0x80040237"
CODE_INVALID = "0x80040203"
CODE_AUTH = "0x80040220"
CODE_UNEXPECTED = "0x80040216"
CODE_STRING_TOO_LONG = "0x80044331"

_XSI_TYPE = ns.qn(ns.XSI, "type")

#: lxml parsers must not be shared between threads, so each thread keeps its own (entities off, no network).
_local = threading.local()


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
        _local.parser = parser
    return parser


class SoapFault(Exception):
    """A CRM-shaped fault to send back: hex ``code``, ``description``; ``client`` picks soap:Client/Sender."""

    def __init__(self, code: str, description: str, *, client: bool = False, kind: str = "") -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.client = client
        self.kind = kind or code


def parse_xml(data: bytes) -> etree._Element:
    """Parse request XML without DTDs, entity expansion or network access; raise ``SoapFault`` when bad."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SoapFault(
            CODE_UNEXPECTED, "DTD is prohibited in this XML document.", client=True, kind="bad_xml"
        )
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise SoapFault(
            CODE_UNEXPECTED, f"Server was unable to read request: {exc}", client=True, kind="bad_xml"
        ) from exc
    if root is None:
        raise SoapFault(
            CODE_UNEXPECTED, "Server was unable to read request: empty body.", client=True, kind="bad_xml"
        )
    return root


def resolve_qname(el: etree._Element, value: str | None) -> tuple[str, str] | None:
    """Resolve a QName-valued text (e.g. an ``xsi:type``) through ``el``'s in-scope namespaces."""
    if not value:
        return None
    prefix, sep, local = value.strip().rpartition(":")
    uri = el.nsmap.get(prefix if sep else None)
    return (uri or "", local)


def attr_qname(el: etree._Element) -> tuple[str, str] | None:
    """Return the resolved ``xsi:type`` of ``el``, or None."""
    return resolve_qname(el, el.get(_XSI_TYPE))


def child(el: etree._Element, namespace: str, local: str) -> etree._Element | None:
    """Return the first child named ``{namespace}local``."""
    return el.find(ns.qn(namespace, local))


def text_of(el: etree._Element | None) -> str | None:
    """Return an element's text ('' for an empty element), or None when the element is absent."""
    if el is None:
        return None
    return el.text or ""


_ENV = {
    ns.SOAP11_ENV: (
        '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="'
        + ns.SOAP11_ENV
        + '" xmlns:xsi="'
        + ns.XSI
        + '" xmlns:xsd="'
        + ns.XSD
        + '"><soap:Body>'
    ),
    ns.SOAP12_ENV: (
        '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="'
        + ns.SOAP12_ENV
        + '" xmlns:xsi="'
        + ns.XSI
        + '" xmlns:xsd="'
        + ns.XSD
        + '"><soap:Body>'
    ),
}
_END = "</soap:Body></soap:Envelope>"


def envelope(body: str, soap_ns: str) -> bytes:
    """Wrap a body fragment in a SOAP 1.1 or 1.2 envelope, as UTF-8 bytes."""
    return (_ENV[soap_ns] + body + _END).encode("utf-8")


def fault_body(fault: SoapFault, soap_ns: str) -> bytes:
    """Render a CRM 4.0 fault: soap:Server/Client, the ASMX faultstring and ``detail/error/{...}``."""
    error = (
        f"<error>\n  <description>{escape(fault.description)}</description>\n  <code>{fault.code}</code>\n"
        f"  <type>Platform</type>\n</error>"
    )
    if soap_ns == ns.SOAP12_ENV:
        value = "soap:Sender" if fault.client else "soap:Receiver"
        body = (
            f"<soap:Fault><soap:Code><soap:Value>{value}</soap:Value></soap:Code><soap:Reason>"
            '<soap:Text xml:lang="en">Server was unable to process request.</soap:Text></soap:Reason>'
            f"<soap:Detail>{error}</soap:Detail></soap:Fault>"
        )
    else:
        code = "soap:Client" if fault.client else "soap:Server"
        body = (
            f"<soap:Fault><faultcode>{code}</faultcode><faultstring>Server was unable to process request."
            f"</faultstring><detail>{error}</detail></soap:Fault>"
        )
    return envelope(body, soap_ns)

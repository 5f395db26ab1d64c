"""SOAP handling for the mock's 2007 endpoint: version, routing, the auth header, dispatch, CRM-shaped faults.

Routing follows CRM 4.0 / ASMX: the SOAP 1.1 ``SOAPAction`` header (quotes and whitespace trimmed) or the
SOAP 1.2 ``action=`` parameter of ``Content-Type``; without either, the body's first element. That element
must then be ``{crm/2007/WebServices}<Operation>``. Names are compared as resolved QNames, never as prefixes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from crmload.metadata import Metadata
from crmload.mock.envelope import (
    CODE_AUTH,
    CODE_UNEXPECTED,
    SoapFault,
    child,
    envelope,
    fault_body,
    parse_xml,
)
from crmload.mock.ops import OPERATIONS, Context
from crmload.mock.store import Store
from crmload.soap import ns

__all__ = ["Protocol", "SoapReply", "soap_version"]

log = logging.getLogger(__name__)

_CT = {ns.SOAP11_ENV: "text/xml; charset=utf-8", ns.SOAP12_ENV: "application/soap+xml; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class SoapReply:
    """What to send back: HTTP status, content type, body; ``op`` names the operation (or "unknown").

    The Organization service also reports its ``dialect`` ("2011"), an Execute's ``message`` name, the
    ``items`` run by message name, per-item faults by code, the ``batch_size`` of an ExecuteMultiple and the
    bearer ``user`` who sent it.
    """

    status: int
    content_type: str
    body: bytes
    op: str
    fault_code: str | None = None
    dialect: str = "2007"
    message: str = ""
    items: Mapping[str, int] | None = None
    item_faults: Mapping[str, int] | None = None
    batch_size: int | None = None
    user: str = ""

    @property
    def records(self) -> int:
        """How many records the request worked on (the per-record execution cost multiplies this)."""
        return 1 if self.items is None else sum(self.items.values())


def soap_version(content_type: str) -> str:
    """Return the envelope namespace a request's Content-Type announces (SOAP 1.2 for
    application/soap+xml)."""
    return ns.SOAP12_ENV if "application/soap+xml" in content_type.lower() else ns.SOAP11_ENV


def _action(soap_action: str | None, content_type: str) -> str:
    if soap_action is not None and soap_action.strip().strip('"').strip():
        return soap_action.strip().strip('"').strip()
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "action":
            return value.strip().strip('"').strip()
    return ""


class Protocol:
    """Turns request bytes into response bytes against one org's store. Thread-safe (the store is)."""

    def __init__(self, org: str, metadata: Metadata, store: Store, seed: int = 0) -> None:
        self.org = org
        ids = uuid.UUID(int=(seed * 2654435761 + 0x5EED) % (1 << 128))
        self.ctx = Context(
            metadata=metadata,
            store=store,
            user_id=uuid.uuid5(ids, "user"),
            business_unit_id=uuid.uuid5(ids, "businessunit"),
            organization_id=uuid.uuid5(ids, f"org:{org.lower()}"),
        )

    def handle(self, body: bytes, soap_action: str | None, content_type: str) -> SoapReply:
        """Answer one POST to the endpoint; never raises for bad input."""
        soap_ns = soap_version(content_type)
        op = "unknown"
        try:
            op, root = self._route(body, soap_action, content_type)
            soap_ns = root.tag[1 : root.tag.index("}")]
            self._check_token(root)
            body_el = child(root, soap_ns, "Body")
            op_el = _first_element(body_el)
            assert op_el is not None  # _route checked it
            fragment = OPERATIONS[op](self.ctx, op_el)
            return SoapReply(200, _CT[soap_ns], envelope(fragment, soap_ns), op)
        except SoapFault as fault:
            log.debug("fault %s on %s: %s", fault.code, op, fault.description)
            return SoapReply(500, _CT[soap_ns], fault_body(fault, soap_ns), op, fault.code)
        except Exception:  # a bug in the mock must cost one request, never the connection or the server
            log.exception("mock CRM failed on %s", op)
            bug = SoapFault(CODE_UNEXPECTED, "An unexpected error occurred.", kind="unexpected")
            return SoapReply(500, _CT[soap_ns], fault_body(bug, soap_ns), op, bug.code)

    def fault(self, fault: SoapFault, content_type: str) -> SoapReply:
        """Render a fault raised outside ``handle`` (e.g. an oversized body) in the request's SOAP version."""
        soap_ns = soap_version(content_type)
        return SoapReply(500, _CT[soap_ns], fault_body(fault, soap_ns), "unknown", fault.code)

    def _route(self, body: bytes, soap_action: str | None, content_type: str) -> tuple[str, etree._Element]:
        root = parse_xml(body)
        if root.tag not in (ns.qn(ns.SOAP11_ENV, "Envelope"), ns.qn(ns.SOAP12_ENV, "Envelope")):
            raise _client(f"The root element {root.tag!r} is not a SOAP envelope.", "bad_envelope")
        soap_ns = root.tag[1 : root.tag.index("}")]
        body_el = child(root, soap_ns, "Body")
        first = _first_element(body_el)
        if first is None:
            raise _client("The SOAP envelope has no Body element, or an empty one.", "bad_envelope")
        action = _action(soap_action, content_type)
        if action:
            if not action.startswith(ns.ACTION2007) or action[len(ns.ACTION2007) :] not in OPERATIONS:
                raise _client(
                    f"Server did not recognize the value of HTTP Header SOAPAction: {action}.", "unknown_op"
                )
            op = action[len(ns.ACTION2007) :]
            if first.tag != ns.qn(ns.WS2007, op):
                raise _client(f"The body element {first.tag!r} does not match SOAPAction {op}.", "unknown_op")
            return op, root
        tag = first.tag if isinstance(first.tag, str) else ""
        if tag.startswith("{" + ns.WS2007 + "}") and tag[len(ns.WS2007) + 2 :] in OPERATIONS:
            return tag[len(ns.WS2007) + 2 :], root
        raise _client(f"Unable to handle request without a valid action parameter ({tag!r}).", "unknown_op")

    def _check_token(self, root: etree._Element) -> None:
        header = child(root, etree.QName(root).namespace or "", "Header")
        token = child(header, ns.WS2007, "CrmAuthenticationToken") if header is not None else None
        if token is None:
            raise SoapFault(CODE_AUTH, "The CrmAuthenticationToken header is missing.", kind="auth_token")
        org_el = child(token, ns.CORE2007, "OrganizationName")
        org = (org_el.text or "").strip() if org_el is not None else ""
        if org.lower() != self.org.lower():
            raise SoapFault(CODE_AUTH, f"The organization '{org}' is not served here.", kind="auth_token")


def _first_element(parent: etree._Element | None) -> etree._Element | None:
    """Return the first child element of ``parent``, skipping comments and processing instructions."""
    if parent is None:
        return None
    return next(parent.iterchildren(tag=etree.Element), None)


def _client(description: str, kind: str) -> SoapFault:
    return SoapFault(CODE_UNEXPECTED, description, client=True, kind=kind)

"""SOAP handling for the mock's Organization service: endpoint, content type, routing, dispatch, faults.

Two paths, optionally after ``/<org>`` (an on-premises URL carries the org name):

- ``/XRMServices/2011/Organization.svc/web``: SOAP 1.1, ``text/xml``, routed by the ``SOAPAction`` header;
- ``/XRMServices/2011/Organization.svc``: SOAP 1.2, ``application/soap+xml``, routed by the ``action``
  parameter of Content-Type or the WS-Addressing ``Action`` header. A real server wants WS-Security here; the
  mock takes the same bearer token as ``/web`` (so zeep, driven by the real WSDL's SOAP 1.2 binding, can talk
  to it).

As WCF does, a content type of the other SOAP version is HTTP 415, and an action that is not an
``IOrganizationService`` operation, or a body element that does not match it, is a ContractFilter fault.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass

from lxml import etree

from crmload.errors import ConfigError
from crmload.mock.bearer import DEFAULT_USER, BearerAuth
from crmload.mock.envelope import CODE_UNEXPECTED, SoapFault, child, parse_xml, text_of
from crmload.mock.http import Request
from crmload.mock.ops import Context
from crmload.mock.org_envelope import envelope11, envelope12, fault_envelope
from crmload.mock.org_ops import OPERATIONS, Call, OrgContext, message_name
from crmload.mock.protocol import SoapReply
from crmload.mock.store import Store
from crmload.soap import ns

__all__ = ["OrgProtocol", "build_org_protocol", "org_soap_version"]

log = logging.getLogger(__name__)

_SVC = ns.PATH2011[: -len("/web")].lower()
_WSA = "http://www.w3.org/2005/08/addressing"
_CT = {ns.SOAP11_ENV: "text/xml; charset=utf-8", ns.SOAP12_ENV: "application/soap+xml; charset=utf-8"}


def org_soap_version(path: str, org: str) -> str | None:
    """Return the SOAP envelope namespace the Organization service speaks at ``path``, or None if it is not
    one of its paths."""
    low = path.lower().rstrip("/")
    for prefix in ("", "/" + org.lower()):
        if low == prefix + _SVC + "/web":
            return ns.SOAP11_ENV
        if low == prefix + _SVC:
            return ns.SOAP12_ENV
    return None


def _action(soap_ns: str, soap_action: str | None, content_type: str, root: etree._Element) -> str:
    if soap_ns == ns.SOAP11_ENV:
        return (soap_action or "").strip().strip('"').strip()
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "action":
            return value.strip().strip('"').strip()
    header = child(root, soap_ns, "Header")
    return (text_of(child(header, _WSA, "Action")) or "").strip() if header is not None else ""


def _contract(description: str) -> SoapFault:
    return SoapFault(CODE_UNEXPECTED, description, client=True, kind="unknown_op")


@dataclass(slots=True)
class _Routed:
    op: str
    body_el: etree._Element
    message_id: str | None


def _reply(  # noqa: PLR0917 - a private builder with one call shape
    status: int,
    soap_ns: str,
    body: bytes,
    op: str,
    body_el: etree._Element | None,
    call: Call,
    fault: SoapFault | None = None,
) -> SoapReply:
    message = ""
    if op == "Execute" and body_el is not None:
        req = child(body_el, ns.XRM2011_SERVICES, "request")
        message = message_name(req) if req is not None else ""
    return SoapReply(
        status,
        _CT[soap_ns],
        body,
        op,
        fault.code if fault is not None else None,
        dialect="2011",
        message=message,
        items=dict(call.tally),
        item_faults=dict(call.item_faults),
        batch_size=call.batch_size,
    )


class OrgProtocol:
    """Turns Organization-service request bytes into response bytes against the shared store."""

    def __init__(self, ctx: OrgContext, users: dict[str, uuid.UUID]) -> None:
        self.ctx = ctx
        self._users = users

    def user_id(self, user: str) -> uuid.UUID:
        """Return the systemuser id of a bearer identity (WhoAmI's UserId)."""
        return self._users[user]

    def answer(self, req: Request, soap_ns: str, user: str) -> SoapReply:
        """Answer an admitted HTTP request from bearer identity ``user``."""
        hdr = req.headers
        reply = self.handle(
            req.body, hdr.get("soapaction"), hdr.get("content-type", ""), soap_ns, self.user_id(user)
        )
        return dataclasses.replace(reply, user=user)

    def handle(
        self, body: bytes, soap_action: str | None, content_type: str, soap_ns: str, user_id: uuid.UUID
    ) -> SoapReply:
        """Answer one POST to the endpoint speaking ``soap_ns``; never raises for bad input."""
        expected = _CT[soap_ns].split(";")[0]
        if content_type.split(";", maxsplit=1)[0].strip().lower() != expected:
            text = (
                f"Cannot process the message because the content type '{content_type}' was not the expected "
                f"type '{_CT[soap_ns]}'."
            )
            return SoapReply(415, "text/plain; charset=utf-8", text.encode(), "unknown", dialect="2011")
        call = Call(self.ctx, user_id)
        op, message_id, body_el = "unknown", None, None
        try:
            routed = self._route(body, soap_action, content_type, soap_ns)
            op, message_id, body_el = routed.op, routed.message_id, routed.body_el
            fragment = OPERATIONS[op](call, routed.body_el)
            if soap_ns == ns.SOAP12_ENV:
                reply = envelope12(fragment, ns.ACTION2011 + op + "Response", message_id)
            else:
                reply = envelope11(fragment)
            return _reply(200, soap_ns, reply, op, body_el, call)
        except SoapFault as fault:
            log.debug("fault %s on %s: %s", fault.code, op, fault.description)
            envelope = fault_envelope(fault, soap_ns, op, message_id)
            return _reply(500, soap_ns, envelope, op, body_el, call, fault)
        except Exception:  # a bug in the mock must cost one request, never the connection or the server
            log.exception("mock CRM (2011) failed on %s", op)
            bug = SoapFault(CODE_UNEXPECTED, "An unexpected error occurred.", kind="unexpected")
            return _reply(500, soap_ns, fault_envelope(bug, soap_ns, op, message_id), op, body_el, call, bug)

    def _route(self, body: bytes, soap_action: str | None, content_type: str, soap_ns: str) -> _Routed:
        root = parse_xml(body)
        if root.tag != ns.qn(soap_ns, "Envelope"):
            raise _contract(
                f"The root element {root.tag!r} is not a SOAP envelope of this endpoint's version."
            )
        body_el = child(root, soap_ns, "Body")
        first = next(body_el.iterchildren(tag=etree.Element), None) if body_el is not None else None
        if first is None:
            raise _contract("The SOAP envelope has no Body element, or an empty one.")
        action = _action(soap_ns, soap_action, content_type, root)
        op = action[len(ns.ACTION2011) :] if action.startswith(ns.ACTION2011) else ""
        if op not in OPERATIONS:
            raise _contract(
                f"The message with Action '{action}' cannot be processed at the receiver, due to a "
                "ContractFilter mismatch at the EndpointDispatcher."
            )
        if first.tag != ns.qn(ns.XRM2011_SERVICES, op):
            raise _contract(f"The body element {first.tag!r} does not match the action {op}.")
        header = child(root, soap_ns, "Header")
        message_id = text_of(child(header, _WSA, "MessageID")) if header is not None else None
        return _Routed(op, first, message_id)


def build_org_protocol(c: Context, store: Store, bearer: BearerAuth, max_batch_size: int) -> OrgProtocol:
    """Build the Organization service over the 2007 endpoint's store and ids; every user the tokens name
    (and the org's business unit and organization) exists for lookups."""
    if max_batch_size < 1:
        raise ConfigError("max_batch_size must be >= 1")
    ctx = OrgContext(
        metadata=c.metadata,
        store=store,
        business_unit_id=c.business_unit_id,
        organization_id=c.organization_id,
        max_batch_size=max_batch_size,
    )
    users = {DEFAULT_USER: c.user_id}
    users.update(
        (u, uuid.uuid5(c.organization_id, "user:" + u.lower())) for u in bearer.users() if u != DEFAULT_USER
    )
    for uid in users.values():
        store.add_known("systemuser", uid)
    store.add_known("businessunit", c.business_unit_id)
    store.add_known("organization", c.organization_id)
    return OrgProtocol(ctx, users)

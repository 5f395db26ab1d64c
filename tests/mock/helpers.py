"""Raw-XML helpers for the mock's tests: build envelopes by hand and post them with ``http.client``."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from crmload.mock import MockCrm

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WS = "http://schemas.microsoft.com/crm/2007/WebServices"
WS06 = "http://schemas.microsoft.com/crm/2006/WebServices"
QRY = "http://schemas.microsoft.com/crm/2006/Query"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACTION = "http://schemas.microsoft.com/crm/2007/WebServices/"

TOKEN = (
    '<CrmAuthenticationToken xmlns="http://schemas.microsoft.com/crm/2007/WebServices">'
    '<AuthenticationType xmlns="http://schemas.microsoft.com/crm/2007/CoreTypes">0</AuthenticationType>'
    '<OrganizationName xmlns="http://schemas.microsoft.com/crm/2007/CoreTypes">{org}</OrganizationName>'
    '<CallerId xmlns="http://schemas.microsoft.com/crm/2007/CoreTypes">00000000-0000-0000-0000-000000000000</CallerId>'
    "</CrmAuthenticationToken>"
)


def envelope(body: str, *, org: str | None = "Contoso", soap12: bool = False) -> bytes:
    """A SOAP envelope around ``body`` with a CrmAuthenticationToken (none when org is None)."""
    env = SOAP12 if soap12 else SOAP11
    header = f"<s:Header>{TOKEN.format(org=org)}</s:Header>" if org is not None else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{env}" xmlns:xsi="{XSI}" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema">{header}<s:Body>{body}</s:Body></s:Envelope>'
    ).encode()


def dyn_entity(entity: str, props: str, tag: str = "entity") -> str:
    """A DynamicEntity element (prefix q1 = 2006 WebServices) holding ``props``."""
    return (
        f'<{tag} xmlns:q1="{WS06}" xsi:type="q1:DynamicEntity" Name="{entity}">'
        f"<q1:Properties>{props}</q1:Properties></{tag}>"
    )


def prop(kind: str, name: str, value: str | None, attrs: str = "") -> str:
    """One ``q1:Property`` (``value=None`` sends IsNull)."""
    val = f'<q1:Value IsNull="true"{attrs} />' if value is None else f"<q1:Value{attrs}>{value}</q1:Value>"
    return f'<q1:Property xsi:type="q1:{kind}" Name="{name}">{val}</q1:Property>'


class Reply:
    """A parsed answer."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def xml(self) -> etree._Element:
        return etree.fromstring(self.body)

    def fault_code(self) -> str | None:
        code = self.xml.find(".//detail/error/code")
        if code is None:
            code = self.xml.find(f".//{{{SOAP12}}}Detail/error/code")
        return None if code is None else code.text

    def find(self, path: str) -> etree._Element | None:
        return self.xml.find(path, {"w": WS, "q": WS06, "s": SOAP11})


def post(
    conn: http.client.HTTPConnection,
    op: str,
    body: bytes,
    *,
    action: str | None = "quoted",
    content_type: str = "text/xml; charset=utf-8",
    path: str = "/MSCRMServices/2007/CrmService.asmx",
) -> Reply:
    """POST ``body`` on ``conn`` with the SOAPAction for ``op`` (``action=None`` omits it)."""
    headers = {"Content-Type": content_type}
    if action == "quoted":
        headers["SOAPAction"] = f'"{ACTION}{op}"'
    elif action is not None:
        headers["SOAPAction"] = action
    conn.request("POST", path, body, headers)
    resp = conn.getresponse()
    return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())


def connect(crm: MockCrm) -> http.client.HTTPConnection:
    """A keep-alive ``http.client`` connection to the mock."""
    parts = urlsplit(crm.url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)


def admin(crm: MockCrm, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """Call a ``/_mock/...`` endpoint on a fresh connection; returns (status, JSON)."""
    conn = connect(crm)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, data, {"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()

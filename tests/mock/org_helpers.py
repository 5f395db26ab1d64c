"""Raw-XML helpers for the Organization-service tests: envelopes written by hand (as XrmServiceToolkit and
Microsoft's Sdk.Soap.js write them), posted with ``http.client`` to the mock's ``/web`` endpoint."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from lxml import etree

from crmload.mock import MockCrm

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SVC = "http://schemas.microsoft.com/xrm/2011/Contracts/Services"
A = "http://schemas.microsoft.com/xrm/2011/Contracts"
B = "http://schemas.datacontract.org/2004/07/System.Collections.Generic"
L = "http://schemas.microsoft.com/xrm/2012/Contracts"
K71 = "http://schemas.microsoft.com/xrm/7.1/Contracts"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
SER = "http://schemas.microsoft.com/2003/10/Serialization/"
ACTION = SVC + "/IOrganizationService/"
PATH = "/XRMServices/2011/Organization.svc/web"
NS = {"s": SOAP11, "v": SVC, "a": A, "b": B, "l": L, "i": XSI}


def kv(key: str, value: str, prefix: str = "a") -> str:
    """A KeyValuePairOfstringanyType around a ``<b:value>`` string."""
    kvp = f"{prefix}:KeyValuePairOfstringanyType"
    return f"<{kvp}><b:key>{key}</b:key>{value}</{kvp}>"


def string(text: str) -> str:
    return f'<b:value i:type="c:string" xmlns:c="{XSD}">{escape(text)}</b:value>'


def typed(xsd_type: str, text: str) -> str:
    return f'<b:value i:type="c:{xsd_type}" xmlns:c="{XSD}">{text}</b:value>'


def ref(entity: str, rid: str | None = None, keys: dict[str, str] | None = None) -> str:
    """An EntityReference value, by id or by alternate key."""
    key_xml = "".join(kv(k, string(v), "o") for k, v in (keys or {}).items())
    id_xml = f"<a:Id>{rid or '00000000-0000-0000-0000-000000000000'}</a:Id>"
    return (
        f'<b:value i:type="a:EntityReference">{id_xml}'
        f'<a:KeyAttributes xmlns:o="{K71}">{key_xml}</a:KeyAttributes>'
        f'<a:LogicalName>{entity}</a:LogicalName><a:Name i:nil="true"/></b:value>'
    )


def entity(logical: str, attrs: str, rid: str | None = None, keys: dict[str, str] | None = None) -> str:
    """The children of an Entity."""
    key_xml = "".join(kv(k, string(v), "o") for k, v in (keys or {}).items())
    return (
        f'<a:Attributes>{attrs}</a:Attributes><a:EntityState i:nil="true"/><a:FormattedValues/>'
        f"<a:Id>{rid or '00000000-0000-0000-0000-000000000000'}</a:Id>"
        f'<a:KeyAttributes xmlns:o="{K71}">{key_xml}</a:KeyAttributes>'
        f"<a:LogicalName>{logical}</a:LogicalName>"
        "<a:RelatedEntities/>"
    )


def request(kind: str, name: str, params: str, element: str = "request", prefix: str = "a") -> str:
    """An OrganizationRequest element (``request`` at the top, ``l:OrganizationRequest`` in a batch)."""
    return (
        f'<{element} i:type="{prefix}:{kind}Request"><a:Parameters>{params}</a:Parameters>'
        f'<a:RequestId i:nil="true"/><a:RequestName>{name}</a:RequestName></{element}>'
    )


def create_req(logical: str, attrs: str, rid: str | None = None, element: str = "request") -> str:
    return request(
        "Create",
        "Create",
        kv("Target", f'<b:value i:type="a:Entity">{entity(logical, attrs, rid)}</b:value>'),
        element,
    )


def upsert_req(logical: str, attrs: str, keys: dict[str, str], element: str = "request") -> str:
    target = f'<b:value i:type="a:Entity">{entity(logical, attrs, keys=keys)}</b:value>'
    return request("Upsert", "Upsert", kv("Target", target), element)


def execute_multiple(items: list[str], *, continue_on_error: bool, return_responses: bool) -> str:
    """An Execute body of one ExecuteMultipleRequest holding ``items`` (l:OrganizationRequest elements)."""
    settings = (
        f'<b:value i:type="l:ExecuteMultipleSettings"><l:ContinueOnError>{str(continue_on_error).lower()}'
        f"</l:ContinueOnError><l:ReturnResponses>{str(return_responses).lower()}</l:ReturnResponses></b:value>"
    )
    params = kv("Requests", f'<b:value i:type="l:OrganizationRequestCollection">{"".join(items)}</b:value>')
    return execute(request("ExecuteMultiple", "ExecuteMultiple", params + kv("Settings", settings)))


def execute(request_xml: str) -> str:
    """An Execute body around a ``request`` element."""
    decl = f'xmlns="{SVC}" xmlns:i="{XSI}" xmlns:a="{A}" xmlns:b="{B}" xmlns:l="{L}"'
    return f"<Execute {decl}>{request_xml}</Execute>"


def envelope(body: str) -> bytes:
    return f'<s:Envelope xmlns:s="{SOAP11}"><s:Body>{body}</s:Body></s:Envelope>'.encode()


class Reply:
    """A parsed answer."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def xml(self) -> etree._Element:
        return etree.fromstring(self.body)

    def findall(self, path: str) -> list[etree._Element]:
        return self.xml.findall(path, NS)

    def find(self, path: str) -> etree._Element | None:
        return self.xml.find(path, NS)

    def error_code(self) -> int | None:
        code = self.xml.findtext(f".//{{{A}}}OrganizationServiceFault/{{{A}}}ErrorCode")
        return None if code is None else int(code)


def post(
    crm: MockCrm,
    op: str,
    body: bytes,
    *,
    token: str | None = None,
    path: str = PATH,
    content_type: str = "text/xml; charset=utf-8",
    conn: http.client.HTTPConnection | None = None,
) -> Reply:
    """POST ``body`` with ``SOAPAction: .../IOrganizationService/<op>`` (and a bearer token if given)."""
    parts = urlsplit(crm.base_url)
    own = conn is None
    conn = conn or http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    headers = {"Content-Type": content_type, "SOAPAction": ACTION + op}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", path, body, headers)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        if own:
            conn.close()


def batch_items(reply: Reply) -> list[tuple[int, int | None, etree._Element | None]]:
    """(RequestIndex, fault ErrorCode or None, Response element or None) of each returned batch item."""
    out = []
    for item in reply.findall(".//l:ExecuteMultipleResponseItem"):
        code = item.findtext("l:Fault/a:ErrorCode", namespaces=NS)
        response = item.find("l:Response", NS)
        nil = response is not None and response.get(f"{{{XSI}}}nil") == "true"
        out.append(
            (
                int(item.findtext("l:RequestIndex", namespaces=NS)),
                None if code is None else int(code),
                None if nil else response,
            )
        )
    return out


def result(reply: Reply, key: str) -> etree._Element | None:
    """The ``b:value`` of ``key`` in an ExecuteResult's Results."""
    for pair in reply.findall(".//v:ExecuteResult/a:Results/a:KeyValuePairOfstringanyType"):
        if pair.findtext("b:key", namespaces=NS) == key:
            return pair.find("b:value", NS)
    return None

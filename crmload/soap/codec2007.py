"""The CRM 4.0 ``CrmService.asmx`` (2007 endpoint) codec: request bytes out, typed values in. No I/O.

Requests are SOAP 1.1 envelopes in the DynamicEntity form, which works for every entity, custom ones included,
without an organisation-specific WSDL. They are built from small string templates with strict escaping
(see ``values``); that is several times faster than building a tree (``benchmarks/codec_bench.py``).
Responses are parsed with one safe lxml parser and matched by QName, never by prefix.

    >>> codec = Codec2007("Contoso")
    >>> body = codec.build_create("account", {"name": "Contoso"})
    >>> codec.soap_action("Create")
    'http://schemas.microsoft.com/crm/2007/WebServices/Create'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from lxml import etree

from crmload.errors import ConfigError, ProtocolError
from crmload.soap import faults
from crmload.soap.ns import (
    ACTION2007,
    CORE2007,
    NO_CALLER,
    QUERY2006,
    SOAP11_ENV,
    SOAP12_ENV,
    WS2006,
    WS2007,
    XSD,
    XSI,
)
from crmload.soap.values import (
    check_name,
    decode_entity,
    encode_condition_value,
    encode_properties,
    escape_text,
)
from crmload.types import as_uuid, is_name

__all__ = ["Codec2007", "Page", "WhoAmI"]

_WSDL_TYPES = "http://microsoft.com/wsdl/types/"
_ENVELOPE_OPEN = (
    '<?xml version="1.0" encoding="utf-8"?>'
    f'<soap:Envelope xmlns:soap="{SOAP11_ENV}" xmlns:xsi="{XSI}" xmlns:xsd="{XSD}" '
    f'xmlns:q1="{WS2006}" xmlns:q2="{QUERY2006}" xmlns:q3="{_WSDL_TYPES}">'
)
_TAIL = b"</soap:Body></soap:Envelope>"
_DYNAMIC_OPEN = '<entity xsi:type="q1:DynamicEntity" Name="{}"><q1:Properties>'
_DYNAMIC_CLOSE = "</q1:Properties></entity>"
_KEY = '<q1:Property xsi:type="q1:KeyProperty" Name="{}"><q1:Value>{}</q1:Value></q1:Property>'

# The one answer crmload gets thousands of times a run, in the exact shape CRM (and the mock) send it:
# an optional XML declaration; a SOAP 1.1 Envelope that binds its own prefix (or the default namespace) to
# SOAP 1.1 and carries only namespace declarations; an optional empty Header; a Body holding only a
# CreateResponse that declares the 2007 namespace itself and holds only a GUID. In a live loop lxml costs
# ~40 us an answer (measured, see BENCHMARKS.md); this match costs ~3 us. Anything else, faults and unusual
# shapes included, fall through to the full lxml parse: the fast path only ever says "a CreateResult".
_NAME = rb"[A-Za-z_][A-Za-z0-9_.-]*"
_SOAP11 = SOAP11_ENV.encode()
_GUID = rb"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_CREATE_FAST = re.compile(
    rb"\A(?:<\?xml[^<>]*\?>)?\s*"
    rb"<(?:(?P<p>" + _NAME + rb"):Envelope(?=[^<>]*\sxmlns:(?P=p)=\"" + _SOAP11 + rb"\")"
    rb"|Envelope(?=[^<>]*\sxmlns=\"" + _SOAP11 + rb"\"))"
    rb"(?:\s+xmlns(?::" + _NAME + rb')?="[^"<>&]*")*\s*>\s*'
    rb"(?:<(?(p)(?P=p):)Header\s*/>|<(?(p)(?P=p):)Header\s*>\s*</(?(p)(?P=p):)Header>)?\s*"
    rb"<(?(p)(?P=p):)Body\s*>\s*<CreateResponse\s+xmlns=\"" + WS2007.encode() + rb'"\s*>\s*'
    rb"<CreateResult>\s*(?P<id>" + _GUID + rb")\s*"
    rb"</CreateResult>\s*</CreateResponse>\s*</(?(p)(?P=p):)Body>\s*</(?(p)(?P=p):)Envelope>\s*\Z"
)

# Which SOAPAction goes with which codec operation. Retrieve and WhoAmI travel inside Execute.
_ACTIONS = {
    "Create": "Create",
    "Update": "Update",
    "Delete": "Delete",
    "Retrieve": "Execute",
    "RetrieveMultiple": "RetrieveMultiple",
    "Fetch": "Fetch",
    "Execute": "Execute",
    "WhoAmI": "Execute",
}
_ACTIONS.update({k.lower(): v for k, v in list(_ACTIONS.items())})
_ACTIONS.update({"retrieve_multiple": "RetrieveMultiple", "who_am_i": "Execute"})


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a RetrieveMultiple: the records, whether more follow, and the cookie for the next page."""

    records: list[dict[str, Any]]
    more_records: bool
    paging_cookie: str | None


@dataclass(frozen=True, slots=True)
class WhoAmI:
    """The calling user's identity as CRM sees it."""

    user_id: UUID
    business_unit_id: UUID
    organization_id: UUID


def _entity_name(entity: object) -> str:
    if not is_name(entity):
        raise ConfigError(f"entity name {str(entity)[:60]!r} is not a CRM logical name")
    return entity  # type: ignore[return-value]


def _id(value: object, what: str = "id") -> str:
    try:
        return str(as_uuid(value, what))
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


class Codec2007:
    """Builds and parses CrmService.asmx messages for one organisation (and optional impersonated caller).

    Args:
        org: the organisation's unique name, sent in ``CrmAuthenticationToken/OrganizationName``.
        caller_id: impersonate this systemuser (``CallerId``); None means no impersonation.
        null_property: optional ``(entity, attribute) -> property type`` (e.g. ``"StringProperty"``) used to
            type a None value. CRM checks a property's type against the attribute's, nulls included; without
            it a None is sent as the untyped default (``values.encode_null``).

    Thread-safe: it holds only immutable cached bytes.
    """

    __slots__ = ("_head", "_null_property", "caller_id", "org")

    def __init__(
        self,
        org: str,
        caller_id: UUID | None = None,
        *,
        null_property: Callable[[str, str], str | None] | None = None,
    ) -> None:
        self._null_property = null_property
        if not isinstance(org, str) or not org.strip():
            raise ConfigError("org must be the organisation's unique name")
        self.org = org
        self.caller_id = as_uuid(caller_id, "caller_id") if caller_id is not None else None
        caller = str(self.caller_id) if self.caller_id is not None else NO_CALLER
        header = (
            f'<soap:Header><CrmAuthenticationToken xmlns="{WS2007}">'
            f'<AuthenticationType xmlns="{CORE2007}">0</AuthenticationType>'
            f'<OrganizationName xmlns="{CORE2007}">{escape_text(org, "org")}</OrganizationName>'
            f'<CallerId xmlns="{CORE2007}">{caller}</CallerId>'
            "</CrmAuthenticationToken></soap:Header><soap:Body>"
        )
        self._head = (_ENVELOPE_OPEN + header).encode("utf-8")

    def __repr__(self) -> str:
        return f"Codec2007(org={self.org!r}, caller_id={self.caller_id!r})"

    def _null_kind(self, entity: str) -> Callable[[str], str | None] | None:
        hook = self._null_property
        if hook is None:
            return None
        return lambda attr: hook(entity, attr)

    def _envelope(self, body: str) -> bytes:
        return self._head + body.encode("utf-8") + _TAIL

    @staticmethod
    def soap_action(op: str) -> str:
        """Return the SOAPAction for the body ``build_<op>`` makes (``"Create"``, ``"retrieve"``, ...)."""
        try:
            return ACTION2007 + _ACTIONS[op]
        except KeyError:
            raise ConfigError(f"unknown CRM 4.0 operation {op!r}") from None

    # --- builders ---------------------------------------------------------------------------------------

    def build_create(self, entity: str, attrs: Mapping[str, object], id: UUID | None = None) -> bytes:
        """Return a ``Create`` envelope; ``id`` becomes a ``KeyProperty`` named ``<entity>id``."""
        name = _entity_name(entity)
        parts = ['<Create xmlns="' + WS2007 + '">', _DYNAMIC_OPEN.format(name)]
        if id is not None:
            key = name + "id"
            if key in attrs:
                raise ConfigError(f"{key} given both as id= and as an attribute")
            parts.append(_KEY.format(key, _id(id)))
        encode_properties(attrs, parts, self._null_kind(name))
        parts.append(_DYNAMIC_CLOSE + "</Create>")
        return self._envelope("".join(parts))

    def build_update(self, entity: str, id: UUID, attrs: Mapping[str, object]) -> bytes:
        """Return an ``Update`` envelope; the record is named by a ``KeyProperty`` ``<entity>id``."""
        name = _entity_name(entity)
        key = name + "id"
        parts = [
            '<Update xmlns="' + WS2007 + '">',
            _DYNAMIC_OPEN.format(name),
            _KEY.format(key, _id(id)),
        ]
        encode_properties({k: v for k, v in attrs.items() if k != key}, parts, self._null_kind(name))
        parts.append(_DYNAMIC_CLOSE + "</Update>")
        return self._envelope("".join(parts))

    def build_delete(self, entity: str, id: UUID) -> bytes:
        """Return a ``Delete`` envelope."""
        name = _entity_name(entity)
        return self._envelope(
            f'<Delete xmlns="{WS2007}"><entityName>{name}</entityName><id>{_id(id)}</id></Delete>'
        )

    @staticmethod
    def _column_set(tag: str, columns: Sequence[str] | None) -> str:
        if columns is None:
            return f'<{tag} xsi:type="q2:AllColumns"/>'
        if isinstance(columns, str):
            raise ConfigError("columns must be a list of attribute names, not one string")
        names = "".join(f"<q2:Attribute>{check_name(c)}</q2:Attribute>" for c in columns)
        return f'<{tag} xsi:type="q2:ColumnSet"><q2:Attributes>{names}</q2:Attributes></{tag}>'

    def build_retrieve(self, entity: str, id: UUID, columns: Sequence[str] | None = None) -> bytes:
        """Return an ``Execute``/``RetrieveRequest`` envelope that asks for DynamicEntity (typed) values.

        ``columns`` None asks for all columns. The SOAPAction is ``soap_action("Retrieve")``, i.e. Execute.
        """
        name = _entity_name(entity)
        return self._envelope(
            f'<Execute xmlns="{WS2007}"><Request xsi:type="RetrieveRequest" ReturnDynamicEntities="true">'
            f'<Target xsi:type="TargetRetrieveDynamic"><EntityName>{name}</EntityName>'
            f"<EntityId>{_id(id)}</EntityId></Target>"
            f"{self._column_set('ColumnSet', columns)}</Request></Execute>"
        )

    def build_retrieve_multiple(  # noqa: PLR0917  (the contract's positional signature)
        self,
        entity: str,
        where: Mapping[str, object] | None = None,
        columns: Sequence[str] | None = None,
        page_size: int = 5000,
        page_number: int = 1,
        paging_cookie: str | None = None,
        *,
        dynamic: bool = False,
    ) -> bytes:
        """Return a ``RetrieveMultiple`` envelope with a QueryExpression.

        ``where`` maps attribute names to values, all ANDed: a value means Equal, None means Null, a list or
        tuple means In. ``dynamic=True`` sends it as ``Execute``/``RetrieveMultipleRequest`` with
        ``ReturnDynamicEntities`` (SOAPAction ``soap_action("Execute")``), as ``build_retrieve`` does, so the
        answer carries each value's property type instead of the typed form's bare text.
        """
        name = _entity_name(entity)
        if not 1 <= page_size <= 5000 or not page_number >= 1:
            raise ConfigError("page_size must be 1..5000 and page_number >= 1")
        cookie = (
            f"<q2:PagingCookie>{escape_text(paging_cookie, 'paging_cookie')}</q2:PagingCookie>"
            if paging_cookie is not None
            else ""
        )
        head, tail = f'<RetrieveMultiple xmlns="{WS2007}"><query', "</query></RetrieveMultiple>"
        if dynamic:
            head = f'<Execute xmlns="{WS2007}"><Request xsi:type="RetrieveMultipleRequest" '
            head += 'ReturnDynamicEntities="true"><Query'
            tail = "</Query></Request></Execute>"
        parts = [
            f'{head} xsi:type="q2:QueryExpression">',
            f"<q2:EntityName>{name}</q2:EntityName>",
            self._column_set("q2:ColumnSet", columns),
            "<q2:Distinct>false</q2:Distinct>",
            f"<q2:PageInfo><q2:PageNumber>{int(page_number)}</q2:PageNumber><q2:Count>{int(page_size)}</q2:Count>"
            f"{cookie}</q2:PageInfo>",
        ]
        if where:
            parts.append("<q2:Criteria><q2:FilterOperator>And</q2:FilterOperator><q2:Conditions>")
            for attr, value in where.items():
                parts.append(self._condition(check_name(attr), value))
            parts.append("</q2:Conditions></q2:Criteria>")
        parts.append(tail)
        return self._envelope("".join(parts))

    @staticmethod
    def _condition(attr: str, value: object) -> str:
        if value is None:
            op, values = "Null", ""
        elif isinstance(value, (list, tuple)):
            if not value:
                raise ConfigError(f"{attr}: an In condition needs at least one value")
            op, values = "In", "".join(encode_condition_value(v, attr) for v in value)
        else:
            op, values = "Equal", encode_condition_value(value, attr)
        values_xml = f"<q2:Values>{values}</q2:Values>" if values else ""
        return (
            f"<q2:Condition><q2:AttributeName>{attr}</q2:AttributeName>"
            f"<q2:Operator>{op}</q2:Operator>{values_xml}</q2:Condition>"
        )

    def build_fetch(self, fetch_xml: str) -> bytes:
        """Return a ``Fetch`` envelope; the FetchXML travels as escaped text, as the WSDL's xs:string says."""
        return self._envelope(
            f'<Fetch xmlns="{WS2007}"><fetchXml>{escape_text(fetch_xml, "fetchXml")}</fetchXml></Fetch>'
        )

    def build_execute(self, request_xml: str) -> bytes:
        """Return an ``Execute`` envelope around ``request_xml``, one ``<Request xsi:type="...">`` element.

        The fragment may use the prefixes ``xsi``, ``xsd``, ``q1`` (crm/2006/WebServices), ``q2`` (Query) and
        ``q3`` (wsdl guid types); unprefixed elements are in crm/2007/WebServices. It must be well-formed.
        """
        envelope = self._envelope(f'<Execute xmlns="{WS2007}">{request_xml}</Execute>')
        try:
            etree.fromstring(envelope, faults.PARSER)
        except etree.XMLSyntaxError as exc:
            raise ConfigError(f"request_xml is not a well-formed XML element: {exc}") from None
        return envelope

    def build_who_am_i(self) -> bytes:
        """Return an ``Execute``/``WhoAmIRequest`` envelope."""
        return self._envelope(f'<Execute xmlns="{WS2007}"><Request xsi:type="WhoAmIRequest"/></Execute>')

    # --- parsers ----------------------------------------------------------------------------------------

    @staticmethod
    def _result(body: bytes) -> etree._Element:
        """Return the first element inside soap:Body; a fault inside it is raised as its crmload error."""
        root = faults.parse_xml(body)
        if root.tag not in (f"{{{SOAP11_ENV}}}Envelope", f"{{{SOAP12_ENV}}}Envelope"):
            raise ProtocolError(f"not a SOAP envelope: {faults.excerpt(body)}")
        soap_ns = etree.QName(root).namespace
        soap_body = root.find(f"{{{soap_ns}}}Body")
        if soap_body is None:
            raise ProtocolError(f"SOAP envelope without a Body: {faults.excerpt(body)}")
        first = next((c for c in soap_body if isinstance(c.tag, str)), None)
        if first is None:
            raise ProtocolError("empty SOAP Body")
        if first.tag == f"{{{soap_ns}}}Fault":
            error = faults.parse_fault(500, body, {})
            raise error if error is not None else ProtocolError("unreadable SOAP fault")
        return first

    @staticmethod
    def _child(el: etree._Element, *names: str) -> etree._Element:
        """Return the first descendant with one of these local names (CRM's namespaces vary by message)."""
        for node in el.iter():
            if isinstance(node.tag, str) and etree.QName(node).localname in names:
                return node
        raise ProtocolError(f"{etree.QName(el).localname} has no {' or '.join(names)}")

    @classmethod
    def _guid(cls, el: etree._Element, *names: str) -> UUID:
        text = (cls._child(el, *names).text or "").strip()
        try:
            return UUID(text)
        except ValueError:
            raise ProtocolError(f"{names[0]} is not a GUID: {text[:60]!r}") from None

    def parse_create(self, body: bytes) -> UUID:
        """Return the new record's id: ``CreateResponse/CreateResult``, or an Execute ``CreateResponse``."""
        fast = _CREATE_FAST.match(body)
        if fast is not None:
            return UUID(fast.group("id").decode("ascii"))
        return self._guid(self._result(body), "CreateResult", "id")

    def parse_retrieve(self, body: bytes) -> dict[str, Any]:
        """Return the retrieved record's attributes as typed values (see ``values.decode_entity``)."""
        result = self._result(body)
        return decode_entity(self._child(result, "BusinessEntity", "RetrieveResult", "DynamicEntity"))

    def parse_retrieve_multiple(self, body: bytes) -> Page:
        """Return one page of records, ``MoreRecords`` and ``PagingCookie`` of a BusinessEntityCollection."""
        collection = self._child(self._result(body), "RetrieveMultipleResult", "BusinessEntityCollection")
        more = (collection.get("MoreRecords") or "false").strip() in ("true", "1")
        records: list[dict[str, Any]] = []
        for holder in collection:
            if isinstance(holder.tag, str) and etree.QName(holder).localname == "BusinessEntities":
                records.extend(decode_entity(e) for e in holder if isinstance(e.tag, str))
        return Page(records=records, more_records=more, paging_cookie=collection.get("PagingCookie") or None)

    def parse_who_am_i(self, body: bytes) -> WhoAmI:
        """Return the ids in an Execute ``WhoAmIResponse``."""
        result = self._result(body)
        return WhoAmI(
            user_id=self._guid(result, "UserId"),
            business_unit_id=self._guid(result, "BusinessUnitId"),
            organization_id=self._guid(result, "OrganizationId"),
        )

    def parse_empty(self, body: bytes) -> None:
        """Check an Update/Delete answer: a SOAP envelope whose Body holds no fault."""
        self._result(body)

    def parse_fetch(self, body: bytes) -> str:
        """Return ``FetchResponse/FetchResult``: the resultset XML as a string."""
        return self._child(self._result(body), "FetchResult").text or ""

"""The Organization-service codec (``/XRMServices/2011/Organization.svc/web``, SOAP 1.1).

Bytes out, typed values in.

Same contract and discipline as ``codec2007``: pure, no I/O; requests from small string templates with strict
escaping (``values2011``); responses parsed with the one safe lxml parser and matched by QName, never by
prefix (SOAP 1.1 and 1.2 envelopes alike). CRUD uses the direct operations; WhoAmI, Upsert and
ExecuteMultiple travel inside ``Execute``.

    >>> codec = Codec2011()
    >>> body = codec.build_create("account", {"name": "Contoso"})
    >>> codec.soap_action("Create")
    'http://schemas.microsoft.com/xrm/2011/Contracts/Services/IOrganizationService/Create'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from lxml import etree

from crmload.batch import BatchRequest, BatchResult, CreateRequest, UpdateRequest, UpsertRequest
from crmload.errors import ConfigError, ProtocolError
from crmload.soap import faults, faults2011
from crmload.soap.codec2007 import Page, WhoAmI, _entity_name, _id
from crmload.soap.ns import (
    ACTION2011,
    ARRAYS,
    COLLECTIONS,
    CRM2011,
    SERIALIZATION,
    SOAP11_ENV,
    SOAP12_ENV,
    XRM71,
    XRM90,
    XRM2011,
    XRM2011_SERVICES,
    XRM2012,
    XSD,
    XSI,
)
from crmload.soap.parts2011 import (
    NO_ID,
    UpsertResult,
    column_set,
    condition,
    entity_of,
    fill_missing,
    organization_request,
    page_fetch,
    parse_items,
    response_items,
    upsert_result,
)
from crmload.soap.values import check_name, escape_text, xsi_type
from crmload.soap.values2011 import decode_entity, decode_pairs

__all__ = ["Codec2011", "UpsertResult"]

_ENVELOPE_OPEN = (
    f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP11_ENV}" xmlns:i="{XSI}" '
    f'xmlns:a="{XRM2011}" xmlns:b="{COLLECTIONS}" xmlns:c="{XSD}" xmlns:d="{XRM90}" '
    f'xmlns:e="{SERIALIZATION}" xmlns:g="{CRM2011}" xmlns:l="{XRM2012}" xmlns:o="{XRM71}" xmlns:r="{ARRAYS}">'
)
_TAIL = b"</s:Body></s:Envelope>"
_A = "{" + XRM2011 + "}"
_L = "{" + XRM2012 + "}"
_S = "{" + XRM2011_SERVICES + "}"
_NIL = "{" + XSI + "}nil"

# Which SOAPAction goes with which codec operation: WhoAmI, Upsert and ExecuteMultiple travel inside Execute.
_ACTIONS = {
    "Create": "Create",
    "Update": "Update",
    "Delete": "Delete",
    "Retrieve": "Retrieve",
    "RetrieveMultiple": "RetrieveMultiple",
    "Fetch": "RetrieveMultiple",
    "Execute": "Execute",
    "WhoAmI": "Execute",
    "Upsert": "Execute",
    "ExecuteMultiple": "Execute",
}
_ACTIONS.update({k.lower(): v for k, v in list(_ACTIONS.items())})
_ACTIONS.update({"retrieve_multiple": "RetrieveMultiple", "who_am_i": "Execute"})
_ACTIONS.update({"execute_multiple": "Execute"})


class Codec2011:
    """Builds and parses Organization-service ``/web`` messages (SOAP 1.1).

    Args:
        sdk_version: sent as the ``SdkClientVersion`` header; 7.1 or later makes the server accept
            KeyAttributes and Upsert, 9.0 multi-select option sets. None sends no header.
        caller_id: impersonate this systemuser (``CallerId`` header); None means no impersonation.

    Thread-safe: it holds only immutable cached bytes.
    """

    __slots__ = ("_head", "caller_id", "sdk_version")

    def __init__(self, *, sdk_version: str | None = "9.0.0.0", caller_id: UUID | None = None) -> None:
        self.sdk_version = sdk_version
        self.caller_id = UUID(_id(caller_id, "caller_id")) if caller_id is not None else None
        header = ""
        if sdk_version is not None:
            version = escape_text(sdk_version, "sdk_version")
            header += f'<SdkClientVersion xmlns="{XRM2011}">{version}</SdkClientVersion>'
        if self.caller_id is not None:
            header += f'<CallerId xmlns="{XRM2011}">{self.caller_id}</CallerId>'
        head = _ENVELOPE_OPEN + (f"<s:Header>{header}</s:Header>" if header else "") + "<s:Body>"
        self._head = head.encode("utf-8")

    def __repr__(self) -> str:
        return f"Codec2011(sdk_version={self.sdk_version!r}, caller_id={self.caller_id!r})"

    def _envelope(self, body: str) -> bytes:
        return self._head + body.encode("utf-8") + _TAIL

    @staticmethod
    def soap_action(op: str) -> str:
        """Return the SOAPAction for the body ``build_<op>`` makes (``"Create"``, ``"execute_multiple"``)."""
        try:
            return ACTION2011 + _ACTIONS[op]
        except KeyError:
            raise ConfigError(f"unknown Organization-service operation {op!r}") from None

    # --- builders ---------------------------------------------------------------------------------------

    def build_create(self, entity: str, attrs: Mapping[str, object], id: UUID | None = None) -> bytes:
        """Return a ``Create`` envelope; ``id`` becomes the Entity's ``Id`` (a client-chosen key)."""
        entity_xml = entity_of(CreateRequest(entity, attrs, id))
        return self._envelope(f'<Create xmlns="{XRM2011_SERVICES}"><entity>{entity_xml}</entity></Create>')

    def build_update(self, entity: str, id: UUID, attrs: Mapping[str, object]) -> bytes:
        """Return an ``Update`` envelope; the record is the Entity's ``Id``."""
        entity_xml = entity_of(UpdateRequest(entity, id, attrs))
        return self._envelope(f'<Update xmlns="{XRM2011_SERVICES}"><entity>{entity_xml}</entity></Update>')

    def build_delete(self, entity: str, id: UUID) -> bytes:
        """Return a ``Delete`` envelope."""
        name = _entity_name(entity)
        return self._envelope(
            f'<Delete xmlns="{XRM2011_SERVICES}"><entityName>{name}</entityName><id>{_id(id)}</id></Delete>'
        )

    def build_retrieve(self, entity: str, id: UUID, columns: Sequence[str] | None = None) -> bytes:
        """Return a ``Retrieve`` envelope; ``columns`` None asks for all columns."""
        name = _entity_name(entity)
        return self._envelope(
            f'<Retrieve xmlns="{XRM2011_SERVICES}"><entityName>{name}</entityName><id>{_id(id)}</id>'
            f"{column_set('columnSet', columns)}</Retrieve>"
        )

    def build_retrieve_multiple(  # noqa: PLR0917  (the contract's positional signature, as codec2007)
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
        """Return a ``RetrieveMultiple`` envelope with a QueryExpression (``where`` as in ``codec2007``).

        ``dynamic`` sends it as ``Execute``/``RetrieveMultipleRequest`` (SOAPAction ``Execute``), the form
        codec2007 needs for typed values; the Organization service types values either way, and
        ``parse_retrieve_multiple`` reads both answers.
        """
        name = _entity_name(entity)
        if not 1 <= page_size <= 5000 or not page_number >= 1:
            raise ConfigError("page_size must be 1..5000 and page_number >= 1")
        cookie = (
            f"<a:PagingCookie>{escape_text(paging_cookie, 'paging_cookie')}</a:PagingCookie>"
            if paging_cookie is not None
            else ""
        )
        parts = [f'<RetrieveMultiple xmlns="{XRM2011_SERVICES}"><query i:type="a:QueryExpression">']
        if dynamic:
            parts[0] = (
                f'<Execute xmlns="{XRM2011_SERVICES}"><request i:type="a:RetrieveMultipleRequest">'
                "<a:Parameters>"
                '<a:KeyValuePairOfstringanyType><b:key>Query</b:key><b:value i:type="a:QueryExpression">'
            )
        parts.append(column_set("a:ColumnSet", columns))
        if where:
            parts.append("<a:Criteria><a:Conditions>")
            parts.extend(condition(check_name(attr), value) for attr, value in where.items())
            parts.append("</a:Conditions><a:FilterOperator>And</a:FilterOperator></a:Criteria>")
        parts.append(
            f"<a:Distinct>false</a:Distinct><a:EntityName>{name}</a:EntityName><a:PageInfo>"
            f"<a:Count>{int(page_size)}</a:Count><a:PageNumber>{int(page_number)}</a:PageNumber>{cookie}"
            "</a:PageInfo>"
        )
        if dynamic:
            parts.append(f"</b:value></a:KeyValuePairOfstringanyType>{NO_ID}RetrieveMultiple</a:RequestName>")
            parts.append("</request></Execute>")
        else:
            parts.append("</query></RetrieveMultiple>")
        return self._envelope("".join(parts))

    def build_fetch(
        self,
        fetch_xml: str,
        *,
        page_number: int | None = None,
        page_size: int | None = None,
        paging_cookie: str | None = None,
    ) -> bytes:
        """Return a ``RetrieveMultiple`` envelope with a FetchExpression; paging goes into ``<fetch>``'s
        ``page``, ``count`` and ``paging-cookie`` attributes, as CRM reads them."""
        if page_number is not None or page_size is not None or paging_cookie is not None:
            fetch_xml = page_fetch(fetch_xml, page_number, page_size, paging_cookie)
        return self._envelope(
            f'<RetrieveMultiple xmlns="{XRM2011_SERVICES}"><query i:type="a:FetchExpression">'
            f"<a:Query>{escape_text(fetch_xml, 'fetch_xml')}</a:Query></query></RetrieveMultiple>"
        )

    def build_execute(self, request_xml: str) -> bytes:
        """Return an ``Execute`` envelope around ``request_xml``, one ``<request i:type="...">`` element.

        The fragment may use the envelope's prefixes: ``a`` xrm/2011/Contracts, ``b`` Collections.Generic,
        ``c`` XMLSchema, ``e`` Serialization, ``g`` crm/2011/Contracts, ``i`` XMLSchema-instance, ``l``
        xrm/2012, ``o`` xrm/7.1, ``d`` xrm/9.0, ``r`` Serialization/Arrays. It must be well-formed.
        """
        envelope = self._envelope(f'<Execute xmlns="{XRM2011_SERVICES}">{request_xml}</Execute>')
        try:
            etree.fromstring(envelope, faults.PARSER)
        except etree.XMLSyntaxError as exc:
            raise ConfigError(f"request_xml is not a well-formed XML element: {exc}") from None
        return envelope

    def build_who_am_i(self) -> bytes:
        """Return an ``Execute``/``WhoAmIRequest`` envelope."""
        return self._envelope(
            f'<Execute xmlns="{XRM2011_SERVICES}"><request i:type="g:WhoAmIRequest"><a:Parameters/>'
            '<a:RequestId i:nil="true"/><a:RequestName>WhoAmI</a:RequestName></request></Execute>'
        )

    def build_upsert(
        self,
        entity: str,
        attrs: Mapping[str, object],
        *,
        id: UUID | None = None,
        keys: Mapping[str, object] | None = None,
    ) -> bytes:
        """Return an ``Execute``/``UpsertRequest`` envelope; the record is found by ``id``, else ``keys``."""
        request = organization_request("request", UpsertRequest(entity, attrs, id, keys))
        return self._envelope(f'<Execute xmlns="{XRM2011_SERVICES}">{request}</Execute>')

    def build_execute_multiple(
        self,
        requests: Sequence[BatchRequest],
        *,
        continue_on_error: bool = True,
        return_responses: bool = True,
    ) -> bytes:
        """Return one ``Execute``/``ExecuteMultipleRequest`` envelope carrying ``requests`` in order."""
        if not requests:
            raise ConfigError("an ExecuteMultiple needs at least one request")
        parts = [
            f'<Execute xmlns="{XRM2011_SERVICES}"><request i:type="a:ExecuteMultipleRequest"><a:Parameters>'
            "<a:KeyValuePairOfstringanyType><b:key>Requests</b:key>"
            '<b:value i:type="l:OrganizationRequestCollection">'
        ]
        parts.extend(organization_request("l:OrganizationRequest", r) for r in requests)
        parts.append(
            "</b:value></a:KeyValuePairOfstringanyType><a:KeyValuePairOfstringanyType><b:key>Settings</b:key>"
            f'<b:value i:type="l:ExecuteMultipleSettings"><l:ContinueOnError>{str(continue_on_error).lower()}'
            f"</l:ContinueOnError><l:ReturnResponses>{str(return_responses).lower()}</l:ReturnResponses>"
            f"</b:value></a:KeyValuePairOfstringanyType>{NO_ID}ExecuteMultiple</a:RequestName>"
            "</request></Execute>"
        )
        return self._envelope("".join(parts))

    # --- parsers ----------------------------------------------------------------------------------------

    @staticmethod
    def _result(body: bytes) -> etree._Element:
        """Return the first element inside the Body; a fault inside it is raised as its crmload error."""
        root = faults.parse_xml(body)
        if root.tag not in (f"{{{SOAP11_ENV}}}Envelope", f"{{{SOAP12_ENV}}}Envelope"):
            raise ProtocolError(f"not a SOAP envelope: {faults.excerpt(body)}")
        soap_ns = etree.QName(root).namespace
        soap_body = root.find(f"{{{soap_ns}}}Body")
        first = (
            next((c for c in soap_body if isinstance(c.tag, str)), None) if soap_body is not None else None
        )
        if first is None:
            raise ProtocolError(f"SOAP envelope without a Body element: {faults.excerpt(body)}")
        if first.tag == f"{{{soap_ns}}}Fault":
            error = faults2011.parse_fault(500, body, {})
            raise error if error is not None else ProtocolError("unreadable SOAP fault")
        return first

    @staticmethod
    def _one(el: etree._Element, tag: str) -> etree._Element:
        found = el.find(tag)
        if found is None:
            raise ProtocolError(f"{etree.QName(el).localname} has no {tag.rpartition('}')[2]}")
        return found

    def _execute_results(self, body: bytes) -> dict[str, Any]:
        result = self._one(self._result(body), _S + "ExecuteResult")
        results = result.find(_A + "Results")
        return decode_pairs(results) if results is not None else {}

    def parse_create(self, body: bytes) -> UUID:
        """Return the new record's id: ``CreateResponse/CreateResult``, or an Execute CreateResponse's id."""
        first = self._result(body)
        if first.tag == _S + "ExecuteResponse":
            value = self._execute_results(body).get("id")
        else:
            value = (self._one(first, _S + "CreateResult").text or "").strip()
        try:
            return value if isinstance(value, UUID) else UUID(str(value))
        except ValueError:
            raise ProtocolError(f"CreateResult is not a GUID: {str(value)[:60]!r}") from None

    def parse_empty(self, body: bytes) -> None:
        """Check an Update/Delete answer: a SOAP envelope whose Body holds no fault."""
        self._result(body)

    def parse_retrieve(self, body: bytes) -> dict[str, Any]:
        """Return the retrieved record's attributes as typed values (``values2011.decode_entity``)."""
        return decode_entity(self._one(self._result(body), _S + "RetrieveResult"))

    def parse_retrieve_multiple(self, body: bytes) -> Page:
        """Return one page: the records, ``MoreRecords`` and ``PagingCookie`` of an EntityCollection."""
        first = self._result(body)
        if first.tag == _S + "ExecuteResponse":
            collection = _result_value(self._one(first, _S + "ExecuteResult"), "EntityCollection")
        else:
            collection = self._one(first, _S + "RetrieveMultipleResult")
        more = (collection.findtext(_A + "MoreRecords") or "false").strip() in ("true", "1")
        entities = collection.find(_A + "Entities")
        records = (
            [decode_entity(e) for e in entities if isinstance(e.tag, str)] if entities is not None else []
        )
        cookie_el = collection.find(_A + "PagingCookie")
        cookie = None if cookie_el is None or cookie_el.get(_NIL) == "true" else (cookie_el.text or None)
        return Page(records=records, more_records=more, paging_cookie=cookie)

    def parse_who_am_i(self, body: bytes) -> WhoAmI:
        """Return the ids in an Execute ``WhoAmIResponse``."""
        results = self._execute_results(body)
        ids = [results.get(k) for k in ("UserId", "BusinessUnitId", "OrganizationId")]
        if not all(isinstance(i, UUID) for i in ids):
            raise ProtocolError(f"WhoAmIResponse lacks its ids: {sorted(results)}")
        return WhoAmI(user_id=ids[0], business_unit_id=ids[1], organization_id=ids[2])  # type: ignore[arg-type]

    def parse_upsert(self, body: bytes) -> UpsertResult:
        """Return whether an Upsert created or updated, and the record's id."""
        return upsert_result(self._execute_results(body))

    def parse_execute_multiple(
        self,
        body: bytes,
        requests: Sequence[BatchRequest],
        *,
        continue_on_error: bool = True,
        return_responses: bool = True,
    ) -> list[BatchResult]:
        """Return one result per request, in order: an id, None, or that item's typed error.

        An item that did not come back either succeeded silently (``return_responses`` False: a keyed
        create returns its own id, an unkeyed one None) or was never run because an earlier item stopped the
        batch (``ItemNotRunError``). A fault of the whole request is raised.
        """
        result = self._one(self._result(body), _S + "ExecuteResult")
        answered = parse_items(response_items(result), requests)
        return fill_missing(answered, requests, continue_on_error, return_responses)


def _result_value(result: etree._Element, local: str) -> etree._Element:
    """The ``value`` of the one Results entry of an OrganizationResponse whose ``i:type`` is ``local``."""
    results = result.find(_A + "Results")
    for value in results.iter("{" + COLLECTIONS + "}value") if results is not None else ():
        resolved = xsi_type(value)
        if resolved is not None and resolved[1] == local:
            return value
    raise ProtocolError(f"{etree.QName(result).localname} has no {local}")

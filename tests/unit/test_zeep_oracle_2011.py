"""The Organization-service codec against the real 2011 WSDL: zeep as the oracle, the WSDL's schemas as judge.

Equivalence is Canonical XML 2.0 with rewritten prefixes and QName-aware ``i:type``, as in
``test_zeep_oracle.py``, applied to the operation element inside the Body (the WSDL's only binding is the
SOAP 1.2 one; ``/web`` is SOAP 1.1, so the envelopes differ by design).

The saved WSDL is a CRM 2013/2015 (6.x/7.0) ``singleWsdl``; ``crmload.soap.wsdl2011.org_service_wsdl`` adds
the request/response classes and the 7.1/9.0 types it predates, by the SDK's DataContract rules.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from lxml import etree

from crmload.batch import CreateRequest, DeleteRequest, UpdateRequest, UpsertRequest
from crmload.soap.codec2011 import Codec2011
from crmload.soap.ns import (
    COLLECTIONS,
    CRM2011,
    SERIALIZATION,
    SOAP11_ENV,
    XRM71,
    XRM90,
    XRM2011,
    XRM2012,
    XSI,
)
from crmload.types import AltKey, Customer, Key, Lookup, Money, MultiPicklist, Owner, Picklist, Status

WSDL = (
    Path(__file__).resolve().parents[3]
    / "shared/reference/crm-wsdl/xrm2011-Organization.svc-onprem-AD.singleWsdl.wsdl"
)
pytestmark = pytest.mark.skipif(not WSDL.is_file(), reason=f"reference WSDL not found at {WSDL}")

XSI_TYPE = f"{{{XSI}}}type"
GUID = UUID("a1b2c3d4-0000-0000-0000-000000000001")
GUID2 = UUID("a1b2c3d4-0000-0000-0000-000000000002")


@pytest.fixture(scope="module")
def patched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crmload.soap.wsdl2011 import org_service_wsdl

    return org_service_wsdl(WSDL, tmp_path_factory.mktemp("wsdl"))


@pytest.fixture(scope="module")
def zc(patched: Path) -> Any:
    from crmload.soap.wsdl import load_client

    return load_client(patched)


@pytest.fixture(scope="module")
def schema(patched: Path) -> etree.XMLSchema:
    from crmload.soap.wsdl import load_schema

    return load_schema(patched)


def _t(client: Any, ns: str, name: str) -> Any:
    return client.get_type(f"{{{ns}}}{name}")


def _any(client: Any, ns: str, name: str, value: Any) -> Any:
    from zeep import xsd

    return xsd.AnyObject(_t(client, ns, name), value)


def _s(value: str) -> Any:
    from zeep import xsd

    return xsd.AnyObject(xsd.String(), value)


def _kv(client: Any, key: str, value: Any) -> Any:
    return _t(client, COLLECTIONS, "KeyValuePairOfstringanyType")(key=key, value=value)


def _xs(kind: str, value: Any) -> Any:
    from zeep import xsd

    types = {"int": xsd.Int, "double": xsd.Double, "decimal": xsd.Decimal, "boolean": xsd.Boolean}
    types |= {"dateTime": xsd.DateTime}
    return xsd.AnyObject(types[kind](), value)


def _ref(client: Any, entity: str, ident: UUID | None = None, keys: Any = None) -> Any:
    return _t(client, XRM2011, "EntityReference")(
        Id=str(ident) if ident else None, KeyAttributes=keys, LogicalName=entity
    )


def _keys(client: Any, pairs: list[tuple[str, Any]]) -> Any:
    items = [_kv(client, k, v) for k, v in pairs]
    return _t(client, XRM71, "KeyAttributeCollection")(KeyValuePairOfstringanyType=items)


def _matrix(c: Any) -> list[tuple[str, object, Any]]:
    """(attribute, our Python value, zeep value of the KeyValuePair)."""
    from zeep import xsd

    osv = _t(c, XRM2011, "OptionSetValue")
    return [
        ("name", "Contoso <&> ]]> \"'\r\n", _s("Contoso <&> ]]> \"'\r\n")),
        ("numberofemployees", -42, _xs("int", -42)),
        ("new_score", 98.5, _xs("double", 98.5)),
        ("new_rate", Decimal("0.125"), _xs("decimal", Decimal("0.125"))),
        ("donotemail", True, _xs("boolean", True)),
        (
            "birthdate",
            datetime(1980, 5, 17, 9, 30, tzinfo=timezone(timedelta(hours=-8))),
            _xs("dateTime", "1980-05-17T17:30:00Z"),
        ),
        ("new_externalid", GUID, _any(c, SERIALIZATION, "guid", str(GUID))),
        ("accountid_key", Key(GUID), _any(c, SERIALIZATION, "guid", str(GUID))),
        ("industrycode", Picklist(2), _any(c, XRM2011, "OptionSetValue", osv(Value=2))),
        ("statuscode", Status(1), _any(c, XRM2011, "OptionSetValue", osv(Value=1))),
        ("revenue", Money("1500.25"), _any(c, XRM2011, "Money", _t(c, XRM2011, "Money")(Value="1500.25"))),
        (
            "new_regionid",
            Lookup("new_region", GUID),
            _any(c, XRM2011, "EntityReference", _ref(c, "new_region", GUID)),
        ),
        (
            "parentcustomerid",
            Customer("account", GUID),
            _any(c, XRM2011, "EntityReference", _ref(c, "account", GUID)),
        ),
        (
            "ownerid",
            Owner("systemuser", GUID),
            _any(c, XRM2011, "EntityReference", _ref(c, "systemuser", GUID)),
        ),
        (
            "parentaccountid",
            AltKey("account", {"accountnumber": "A-1", "new_region": 7}),
            _any(
                c,
                XRM2011,
                "EntityReference",
                _ref(
                    c, "account", keys=_keys(c, [("accountnumber", _s("A-1")), ("new_region", _xs("int", 7))])
                ),
            ),
        ),
        (
            "new_colours",
            MultiPicklist([1, 3]),
            _any(
                c,
                XRM90,
                "OptionSetValueCollection",
                _t(c, XRM90, "OptionSetValueCollection")(OptionSetValue=[osv(Value=1), osv(Value=3)]),
            ),
        ),
        ("telephone1", None, xsd.Nil),
    ]


def _entity(
    c: Any, entity: str, pairs: list[tuple[str, Any]], ident: UUID | None = None, keys: Any = None
) -> Any:
    attrs = _t(c, XRM2011, "AttributeCollection")(
        KeyValuePairOfstringanyType=[_kv(c, k, v) for k, v in pairs]
    )
    return _t(c, XRM2011, "Entity")(
        Attributes=attrs, Id=str(ident) if ident else None, KeyAttributes=keys, LogicalName=entity
    )


def _request(c: Any, ns: str, name: str, params: list[Any], request_name: str) -> Any:
    from zeep import xsd

    collection = _t(c, XRM2011, "ParameterCollection")(KeyValuePairOfstringanyType=params)
    return _t(c, ns, name)(Parameters=collection, RequestId=xsd.Nil, RequestName=request_name)


def _zeep_op(c: Any, op: str, **kwargs: Any) -> etree._Element:
    message = c.create_message(c.service, op, **kwargs)
    body = next(el for el in message if etree.QName(el).localname == "Body")
    return body[0]


def _ours(envelope: bytes) -> etree._Element:
    body = etree.fromstring(envelope).find(f"{{{SOAP11_ENV}}}Body")
    assert body is not None
    return body[0]


def _c14n(el: etree._Element) -> str:
    text = etree.tostring(el, encoding="unicode")
    return str(ET.canonicalize(xml_data=text, rewrite_prefixes=True, qname_aware_attrs=[XSI_TYPE]))


def _shape(el: etree._Element) -> tuple[Any, ...]:
    attrs = []
    for key, raw in el.attrib.items():
        value = raw
        if key == XSI_TYPE:
            prefix, _, local = raw.rpartition(":")
            value = f"{{{el.nsmap.get(prefix or None)}}}{local}"
        attrs.append((key, value))
    children = tuple(_shape(ch) for ch in el if isinstance(ch.tag, str))
    return (el.tag, tuple(sorted(attrs)), el.text or "", children)


def _check(ours: bytes, theirs: etree._Element, schema: etree._Element) -> None:
    mine = _ours(ours)
    assert _shape(mine) == _shape(theirs)
    assert _c14n(mine) == _c14n(theirs)
    assert schema.validate(mine), schema.error_log


CODEC = Codec2011(sdk_version=None)


def test_every_value_type_matches_zeep_and_validates(zc: Any, schema: etree.XMLSchema) -> None:
    for attr, value, zeep_value in _matrix(zc):
        ours = CODEC.build_create("account", {attr: value})
        theirs = _zeep_op(zc, "Create", entity=_entity(zc, "account", [(attr, zeep_value)]))
        _check(ours, theirs, schema)


def test_whole_matrix_in_one_keyed_create(zc: Any, schema: etree.XMLSchema) -> None:
    matrix = _matrix(zc)
    ours = CODEC.build_create("account", {a: v for a, v, _ in matrix}, id=GUID)
    theirs = _zeep_op(zc, "Create", entity=_entity(zc, "account", [(a, z) for a, _, z in matrix], GUID))
    _check(ours, theirs, schema)


def test_update_delete_retrieve_match_zeep(zc: Any, schema: etree.XMLSchema) -> None:
    osv = _t(zc, XRM2011, "OptionSetValue")
    ours = CODEC.build_update("contact", GUID, {"jobtitle": "Buyer", "statuscode": Status(1)})
    pairs = [("jobtitle", _s("Buyer")), ("statuscode", _any(zc, XRM2011, "OptionSetValue", osv(Value=1)))]
    _check(ours, _zeep_op(zc, "Update", entity=_entity(zc, "contact", pairs, GUID)), schema)
    ours = CODEC.build_delete("contact", GUID)
    _check(ours, _zeep_op(zc, "Delete", entityName="contact", id=str(GUID)), schema)
    cols = _t(zc, XRM2011, "ColumnSet")
    ours = CODEC.build_retrieve("contact", GUID, ["fullname", "emailaddress1"])
    arr = {"string": ["fullname", "emailaddress1"]}
    theirs = _zeep_op(
        zc, "Retrieve", entityName="contact", id=str(GUID), columnSet=cols(AllColumns=False, Columns=arr)
    )
    _check(ours, theirs, schema)
    ours = CODEC.build_retrieve("contact", GUID)
    theirs = _zeep_op(zc, "Retrieve", entityName="contact", id=str(GUID), columnSet=cols(AllColumns=True))
    _check(ours, theirs, schema)


def test_retrieve_multiple_query_expression_matches_zeep(zc: Any, schema: etree.XMLSchema) -> None:

    where = {
        "lastname": "Morgan & Sons",
        "statecode": None,
        "parentcustomerid": [Lookup("account", GUID), GUID2],
    }
    ours = CODEC.build_retrieve_multiple("contact", where, ["fullname"], 250, 3, "<cookie page='2'/>")
    a = lambda name: _t(zc, XRM2011, name)  # noqa: E731
    guid = lambda g: _any(zc, SERIALIZATION, "guid", str(g))  # noqa: E731
    conditions = [
        a("ConditionExpression")(
            AttributeName="lastname", Operator="Equal", Values={"anyType": [_s("Morgan & Sons")]}
        ),
        a("ConditionExpression")(AttributeName="statecode", Operator="Null"),
        a("ConditionExpression")(
            AttributeName="parentcustomerid", Operator="In", Values={"anyType": [guid(GUID), guid(GUID2)]}
        ),
    ]
    query = a("QueryExpression")(
        ColumnSet=a("ColumnSet")(AllColumns=False, Columns={"string": ["fullname"]}),
        Criteria=a("FilterExpression")(Conditions={"ConditionExpression": conditions}, FilterOperator="And"),
        Distinct=False,
        EntityName="contact",
        PageInfo=a("PagingInfo")(Count=250, PageNumber=3, PagingCookie="<cookie page='2'/>"),
    )
    theirs = _zeep_op(zc, "RetrieveMultiple", query=query)
    _check(ours, theirs, schema)


def test_fetch_matches_zeep(zc: Any, schema: etree.XMLSchema) -> None:

    fetch = "<fetch mapping='logical'><entity name='contact'><attribute name='fullname'/></entity></fetch>"
    ours = CODEC.build_fetch(fetch)
    fe = _t(zc, XRM2011, "FetchExpression")
    _check(ours, _zeep_op(zc, "RetrieveMultiple", query=fe(Query=fetch)), schema)
    paged = _ours(CODEC.build_fetch(fetch, page_number=2, page_size=50, paging_cookie="<cookie p='1'/>"))
    inner = etree.fromstring(paged.findtext(f".//{{{XRM2011}}}Query").encode())
    assert (inner.get("page"), inner.get("count"), inner.get("paging-cookie")) == (
        "2",
        "50",
        "<cookie p='1'/>",
    )
    assert schema.validate(paged), schema.error_log


def test_who_am_i_matches_zeep(zc: Any, schema: etree.XMLSchema) -> None:

    theirs = _request(zc, CRM2011, "WhoAmIRequest", [], "WhoAmI")
    theirs.Parameters = _t(zc, XRM2011, "ParameterCollection")()
    element = _zeep_op(zc, "Execute", request=theirs)
    _check(CODEC.build_who_am_i(), element, schema)


def _target(zc: Any, entity: Any, kind: str = "Entity") -> Any:
    return _kv(zc, "Target", _any(zc, XRM2011, kind, entity))


def test_upsert_by_alternate_key_matches_zeep(zc: Any, schema: etree.XMLSchema) -> None:

    ours = CODEC.build_upsert("account", {"name": "Contoso"}, keys={"accountnumber": "A-1"})
    target = _entity(zc, "account", [("name", _s("Contoso"))], keys=_keys(zc, [("accountnumber", _s("A-1"))]))
    request = _request(zc, XRM2011, "UpsertRequest", [_target(zc, target)], "Upsert")
    element = _zeep_op(zc, "Execute", request=request)
    _check(ours, element, schema)


def test_execute_multiple_matches_zeep(zc: Any, schema: etree.XMLSchema) -> None:
    from zeep import xsd

    requests = [
        CreateRequest("account", {"name": "A"}),
        CreateRequest("account", {"name": "B"}, GUID),
        UpdateRequest("account", GUID, {"telephone1": None}),
        DeleteRequest("account", GUID2),
        UpsertRequest("account", {"name": "C"}, keys={"accountnumber": "A-3"}),
    ]
    ours = CODEC.build_execute_multiple(requests, continue_on_error=False, return_responses=True)
    items = [
        ("CreateRequest", _entity(zc, "account", [("name", _s("A"))]), "Entity"),
        ("CreateRequest", _entity(zc, "account", [("name", _s("B"))], GUID), "Entity"),
        ("UpdateRequest", _entity(zc, "account", [("telephone1", xsd.Nil)], GUID), "Entity"),
        ("DeleteRequest", _ref(zc, "account", GUID2), "EntityReference"),
        (
            "UpsertRequest",
            _entity(zc, "account", [("name", _s("C"))], keys=_keys(zc, [("accountnumber", _s("A-3"))])),
            "Entity",
        ),
    ]
    collection = [
        _request(zc, XRM2011, kind, [_target(zc, target, tk)], kind.removesuffix("Request"))
        for kind, target, tk in items
    ]
    org_requests = _t(zc, XRM2012, "OrganizationRequestCollection")(OrganizationRequest=collection)
    settings = _t(zc, XRM2012, "ExecuteMultipleSettings")(ContinueOnError=False, ReturnResponses=True)
    params = [
        _kv(
            zc,
            "Requests",
            _any(zc, XRM2012, "OrganizationRequestCollection", org_requests),
        ),
        _kv(zc, "Settings", _any(zc, XRM2012, "ExecuteMultipleSettings", settings)),
    ]
    request = _request(zc, XRM2011, "ExecuteMultipleRequest", params, "ExecuteMultiple")
    element = _zeep_op(zc, "Execute", request=request)
    _check(ours, element, schema)


def test_the_judges_can_fail(zc: Any, schema: etree.XMLSchema) -> None:
    body = CODEC.build_create("account", {"numberofemployees": 5})
    theirs = _zeep_op(zc, "Create", entity=_entity(zc, "account", [("numberofemployees", _xs("int", 6))]))
    with pytest.raises(AssertionError):
        _check(body, theirs, schema)
    # Element order is the DataContract's: LogicalName before Id is not a valid Entity.
    swapped = CODEC.build_create("account", {}, id=GUID).replace(
        f"<a:Id>{GUID}</a:Id><a:LogicalName>account</a:LogicalName>".encode(),
        f"<a:LogicalName>account</a:LogicalName><a:Id>{GUID}</a:Id>".encode(),
    )
    assert not schema.validate(_ours(swapped))
    not_int = body.replace(b'i:type="c:int">5', b'i:type="c:int">five')
    assert not schema.validate(_ours(not_int))


def test_retrieve_multiple_inside_execute_and_raw_execute_validate(schema: etree.XMLSchema) -> None:
    body = CODEC.build_retrieve_multiple("contact", {"lastname": "Morgan"}, ["fullname"], dynamic=True)
    assert schema.validate(_ours(body)), schema.error_log
    raw = CODEC.build_execute(
        '<request i:type="g:WhoAmIRequest"><a:Parameters/><a:RequestName>WhoAmI</a:RequestName></request>'
    )
    assert schema.validate(_ours(raw)), schema.error_log

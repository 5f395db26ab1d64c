"""zeep, a third-party SOAP client driven by the real 2011 WSDL (its SOAP 1.2 binding, WS-Addressing
headers), talks to the mock's ``Organization.svc`` endpoint: Create, Retrieve, a fault, and
Execute(ExecuteMultiple).

zeep cannot deserialise an ``ExecuteResult`` typed ``a:ExecuteMultipleResponse`` (or ``a:CreateResponse``):
those message classes are not in the WSDL, as on a real server, whose answers carry the same types. So the
batch answer is taken raw from zeep's transport and read with lxml.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from crmload.mock import MockCrm

zeep = pytest.importorskip("zeep")

A = "{http://schemas.microsoft.com/xrm/2011/Contracts}"
G = "{http://schemas.datacontract.org/2004/07/System.Collections.Generic}"
L = "{http://schemas.microsoft.com/xrm/2012/Contracts}"
XS = "{http://www.w3.org/2001/XMLSchema}"
BINDING = "{http://schemas.microsoft.com/xrm/2011/Contracts/Services}CustomBinding_IOrganizationService"
WSDL = "crm-wsdl/xrm2011-Organization.svc-onprem-AD.singleWsdl.wsdl"


@pytest.fixture
def zeep_client(shared_reference: Path, crm_factory: Any) -> tuple[Any, Any, MockCrm]:
    crm = crm_factory(tokens={"zeep-token": "zeep"})
    session = requests.Session()
    session.headers["Authorization"] = "Bearer zeep-token"
    settings = zeep.Settings(strict=False, forbid_dtd=True, forbid_entities=True)
    transport = zeep.transports.Transport(session=session)
    client = zeep.Client(str(shared_reference / WSDL), settings=settings, transport=transport)
    service = client.create_service(BINDING, crm.base_url + "/XRMServices/2011/Organization.svc")
    return client, service, crm


def _entity(client: Any, logical: str, **strings: str) -> Any:
    kv = client.get_type(G + "KeyValuePairOfstringanyType")
    xs_string = client.get_type(XS + "string")
    pairs = [kv(key=k, value=zeep.xsd.AnyObject(xs_string, v)) for k, v in strings.items()]
    attrs = client.get_type(A + "AttributeCollection")(KeyValuePairOfstringanyType=pairs)
    return client.get_type(A + "Entity")(Attributes=attrs, LogicalName=logical)


def test_zeep_create_retrieve_and_fault(zeep_client: tuple[Any, Any, MockCrm]) -> None:
    client, service, crm = zeep_client
    rid = service.Create(entity=_entity(client, "account", name="Contoso", telephone1="555"))
    [rec] = crm.records("account")
    assert rec == {"accountid": rid, "name": "Contoso", "telephone1": "555"}
    got = service.Retrieve(
        entityName="account", id=rid, columnSet=client.get_type(A + "ColumnSet")(AllColumns=True)
    )
    assert got.Id == rid
    assert got.LogicalName == "account"
    values = {p.key: p.value for p in got.Attributes.KeyValuePairOfstringanyType}
    assert values == {"accountid": rid, "name": "Contoso", "telephone1": "555"}
    missing = "9e9cc03c-e7cc-e111-bbd7-005056b14b94"
    with pytest.raises(zeep.exceptions.Fault) as info:
        service.Delete(entityName="account", id=missing)
    assert info.value.message == f"account With Id = {missing} Does Not Exist"
    assert info.value.code == "s:Sender"
    assert crm.stats()["requests_by_dialect"] == {"2011": {"Create": 1, "Retrieve": 1, "Delete": 1}}


def test_zeep_execute_multiple(zeep_client: tuple[Any, Any, MockCrm]) -> None:
    client, service, crm = zeep_client
    kv = client.get_type(G + "KeyValuePairOfstringanyType")
    params = client.get_type(A + "ParameterCollection")
    org_request = client.get_type(A + "OrganizationRequest")
    entity_type = client.get_type(A + "Entity")
    items = [
        org_request(
            Parameters=params(
                KeyValuePairOfstringanyType=[
                    kv(
                        key="Target",
                        value=zeep.xsd.AnyObject(entity_type, _entity(client, "account", name=f"B{n}")),
                    )
                ]
            ),
            RequestName="Create",
        )
        for n in range(5)
    ]
    collection = client.get_type(L + "OrganizationRequestCollection")
    settings = client.get_type(L + "ExecuteMultipleSettings")
    batch = org_request(
        Parameters=params(
            KeyValuePairOfstringanyType=[
                kv(
                    key="Requests",
                    value=zeep.xsd.AnyObject(collection, collection(OrganizationRequest=items)),
                ),
                kv(
                    key="Settings",
                    value=zeep.xsd.AnyObject(settings, settings(ContinueOnError=True, ReturnResponses=True)),
                ),
            ]
        ),
        RequestName="ExecuteMultiple",
    )
    with client.settings(raw_response=True):
        raw = service.Execute(request=batch)
    assert raw.status_code == 200
    assert raw.headers["Content-Type"].startswith("application/soap+xml")
    doc = etree.fromstring(raw.content)
    indexes = [int(i.text) for i in doc.iter(L + "RequestIndex")]
    assert indexes == [0, 1, 2, 3, 4]
    ids = [v.text for v in doc.iter(G + "value") if v.getparent().findtext(G + "key") == "id"]
    assert sorted(ids) == sorted(a["accountid"] for a in crm.records("account"))
    assert sorted(a["name"] for a in crm.records("account")) == [f"B{n}" for n in range(5)]
    action = doc.findtext(".//{http://www.w3.org/2005/08/addressing}Action")
    assert (
        action
        == "http://schemas.microsoft.com/xrm/2011/Contracts/Services/IOrganizationService/ExecuteResponse"
    )
    assert crm.stats()["batch_sizes"] == {"5": 1}


def test_soap12_fault_matches_the_real_fixture(
    zeep_client: tuple[Any, Any, MockCrm], shared_reference: Path
) -> None:
    client, service, _ = zeep_client
    missing = "0a0a00a0-0000-a000-a00a-a0000aaaa00a"
    with client.settings(raw_response=True):
        raw = service.Retrieve(
            entityName="systemuser", id=missing, columnSet=client.get_type(A + "ColumnSet")(AllColumns=True)
        )
    assert raw.status_code == 500
    fixture = (
        shared_reference
        / "crm-wsdl/samples/org-soap12_fault_retrieve_objectdoesnotexist.uktrade-fixture.response.xml"
    )

    def body_of(data: bytes) -> bytes:
        body = etree.fromstring(data).find("{http://www.w3.org/2003/05/soap-envelope}Body")
        text = etree.tostring(body, method="c14n", exclusive=True)
        text = re.sub(rb">\s+<", b"><", text)
        return re.sub(rb"<Timestamp>[^<]*</Timestamp>", b"", text)

    assert body_of(raw.content) == body_of(fixture.read_bytes())
    fault_action = etree.fromstring(raw.content).findtext(".//{http://www.w3.org/2005/08/addressing}Action")
    assert fault_action.endswith("/IOrganizationService/RetrieveOrganizationServiceFaultFault")

"""XML namespaces and fixed names of the CRM SOAP protocols: all the codec and the mock share."""

from __future__ import annotations

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"

#: CRM 4.0 operations and request/response classes.
WS2007 = "http://schemas.microsoft.com/crm/2007/WebServices"
#: CrmAuthenticationToken children.
CORE2007 = "http://schemas.microsoft.com/crm/2007/CoreTypes"
#: DynamicEntity, the *Property types and the value types (CrmNumber, Lookup, ...).
WS2006 = "http://schemas.microsoft.com/crm/2006/WebServices"
CORE2006 = "http://schemas.microsoft.com/crm/2006/CoreTypes"
#: ColumnSet, AllColumns, QueryExpression, QueryByAttribute, ConditionExpression.
QUERY2006 = "http://schemas.microsoft.com/crm/2006/Query"

#: SOAP 1.1 SOAPAction prefix; the operation name follows, e.g. ``.../Create``.
ACTION2007 = WS2007 + "/"
#: The CRM 4.0 endpoint path, as IIS serves it (case-insensitive there).
PATH2007 = "/MSCRMServices/2007/CrmService.asmx"

OPERATIONS2007 = ("Create", "Update", "Delete", "Retrieve", "RetrieveMultiple", "Fetch", "Execute")

# --- CRM 2011+ Organization service (IOrganizationService); match on these, never on prefixes ---------------

#: The operation elements (Create, Execute, ...) and their responses.
XRM2011_SERVICES = "http://schemas.microsoft.com/xrm/2011/Contracts/Services"
#: Entity, EntityReference, OptionSetValue, Money, ColumnSet, QueryExpression, FetchExpression,
#: OrganizationRequest/Response, OrganizationServiceFault, KeyValuePairOfstringanyType.
XRM2011 = "http://schemas.microsoft.com/xrm/2011/Contracts"
#: CRM-specific messages: WhoAmIRequest/WhoAmIResponse.
CRM2011 = "http://schemas.microsoft.com/crm/2011/Contracts"
#: ExecuteMultiple: OrganizationRequestCollection, ExecuteMultipleSettings, OrganizationResponseCollection,
#: ExecuteMultipleResponseItem.
XRM2012 = "http://schemas.microsoft.com/xrm/2012/Contracts"
#: KeyAttributeCollection (alternate keys, Upsert; CRM 2015 Update 1 / 7.1+).
XRM71 = "http://schemas.microsoft.com/xrm/7.1/Contracts"
#: OptionSetValueCollection (multi-select option sets; 9.0+).
XRM90 = "http://schemas.microsoft.com/xrm/9.0/Contracts"
#: KeyValuePairOfstringanyType's ``key``/``value`` children.
COLLECTIONS = "http://schemas.datacontract.org/2004/07/System.Collections.Generic"
#: DataContract primitives: ``guid``, ``duration`` (TimeSpan), ``char``.
SERIALIZATION = "http://schemas.microsoft.com/2003/10/Serialization/"
#: ``string`` items of an ArrayOfstring (ColumnSet/Columns, ConditionExpression values...).
ARRAYS = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"

#: SOAPAction prefix (SOAP 1.1 /web) and WS-Addressing action prefix (SOAP 1.2); the operation name follows.
ACTION2011 = XRM2011_SERVICES + "/IOrganizationService/"
#: The SOAP 1.1 endpoint path; ``/XRMServices/2011/Organization.svc`` without ``/web`` is the SOAP 1.2 one.
PATH2011 = "/XRMServices/2011/Organization.svc/web"

OPERATIONS2011 = (
    "Create",
    "Retrieve",
    "Update",
    "Delete",
    "Execute",
    "Associate",
    "Disassociate",
    "RetrieveMultiple",
)

#: The CallerId that means "no impersonation".
NO_CALLER = "00000000-0000-0000-0000-000000000000"


def qn(ns: str, local: str) -> str:
    """Return the Clark-notation QName ``{ns}local`` that lxml uses."""
    return "{" + ns + "}" + local

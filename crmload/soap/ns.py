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

#: The CallerId that means "no impersonation".
NO_CALLER = "00000000-0000-0000-0000-000000000000"


def qn(ns: str, local: str) -> str:
    """Return the Clark-notation QName ``{ns}local`` that lxml uses."""
    return "{" + ns + "}" + local

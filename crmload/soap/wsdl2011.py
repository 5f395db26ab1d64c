"""The Organization service's WSDL as zeep and the schema judge need it: the saved file plus what it omits.

The reference ``Organization.svc?singleWsdl`` is a CRM 2013/2015 (6.x/7.0) one. Things a server of that era
and later knows are missing from it, and are added here by the DataContract rules the SDK's classes follow:
- the request and response classes (``CreateRequest``, ``ExecuteMultipleRequest``, ``WhoAmIRequest``...),
  known types of ``OrganizationRequest``/``OrganizationResponse`` with no members of their own;
- 7.1's ``KeyAttributes`` (in Entity and EntityReference, after ``Id``) and its ``KeyAttributeCollection``;
- 9.0's ``OptionSetValueCollection`` (CRM-PROTOCOL.md §2.3, ORG-SERVICE-BATCHES.md §4).
Used by the codec's oracle tests and benchmarks only; the hot path never loads a WSDL.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from crmload.errors import ConfigError
from crmload.soap.ns import COLLECTIONS, CRM2011, XRM71, XRM90, XRM2011

__all__ = ["org_service_wsdl"]

_MESSAGES = ("Create", "Update", "Delete", "Retrieve", "RetrieveMultiple", "Upsert", "ExecuteMultiple")
_XS = "http://www.w3.org/2001/XMLSchema"
_ID_THEN_NAME = (
    '<xs:element minOccurs="0" name="Id" type="ser:guid"/><xs:element minOccurs="0" name="LogicalName"'
)


def _derived(name: str, base: str) -> str:
    return (
        f'<xs:complexType name="{name}" xmlns:q0="{XRM2011}"><xs:complexContent mixed="false">'
        f'<xs:extension base="q0:{base}"><xs:sequence/></xs:extension></xs:complexContent></xs:complexType>'
    )


def _patched(text: str) -> str:
    contracts = "".join(_derived(f"{n}Request", "OrganizationRequest") for n in _MESSAGES)
    contracts += "".join(_derived(f"{n}Response", "OrganizationResponse") for n in _MESSAGES)
    crm = _derived("WhoAmIRequest", "OrganizationRequest") + _derived(
        "WhoAmIResponse", "OrganizationResponse"
    )
    for ns, extra in ((XRM2011, contracts), (CRM2011, crm)):
        opening = text.index(f'targetNamespace="{ns}"')
        end = text.index(">", opening) + 1
        text = text[:end] + extra + text[end:]
    if text.count(_ID_THEN_NAME) != 2:  # Entity and EntityReference, nothing else
        raise ConfigError("not the expected Organization-service WSDL: Entity/EntityReference not found")
    text = text.replace(
        _ID_THEN_NAME,
        '<xs:element minOccurs="0" name="Id" type="ser:guid"/><xs:element minOccurs="0" name="KeyAttributes" '
        f'nillable="true" type="q71:KeyAttributeCollection" xmlns:q71="{XRM71}"/>'
        '<xs:element minOccurs="0" name="LogicalName"',
    )
    extra_schemas = (
        f'<xs:schema elementFormDefault="qualified" targetNamespace="{XRM71}" xmlns:xs="{_XS}" '
        f'xmlns:g="{COLLECTIONS}"><xs:complexType name="KeyAttributeCollection"><xs:sequence>'
        '<xs:element minOccurs="0" maxOccurs="unbounded" name="KeyValuePairOfstringanyType" '
        'type="g:KeyValuePairOfstringanyType"/></xs:sequence></xs:complexType></xs:schema>'
        f'<xs:schema elementFormDefault="qualified" targetNamespace="{XRM90}" xmlns:xs="{_XS}" '
        f'xmlns:a="{XRM2011}"><xs:complexType name="OptionSetValueCollection"><xs:sequence>'
        '<xs:element minOccurs="0" maxOccurs="unbounded" name="OptionSetValue" nillable="true" '
        'type="a:OptionSetValue"/></xs:sequence></xs:complexType></xs:schema>'
    )
    return text.replace("</wsdl:types>", extra_schemas + "</wsdl:types>")


def org_service_wsdl(
    wsdl_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Write the saved 2011 WSDL with the additions above to ``out_dir`` (a new temp dir by default).

    Load the result with ``wsdl.load_client`` / ``wsdl.load_schema``. ConfigError if the file is not there or
    is not the Organization service's WSDL.
    """
    source = Path(wsdl_path)
    if not source.is_file():
        raise ConfigError(f"WSDL not found: {source}")
    try:
        text = _patched(source.read_text(encoding="utf-8"))
    except ValueError:
        raise ConfigError(f"not the Organization service's WSDL: {source}") from None
    target = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="crmload-wsdl-"))
    out = target / "organization-2011-extended.wsdl"
    out.write_text(text, encoding="utf-8")
    return out

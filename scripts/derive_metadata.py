"""Derive crmload's compact entity metadata table from the real CRM 4.0 CrmService WSDL.

The WSDL is organisation-specific: it carries one strongly typed class per entity (an ``xs:complexType`` that
extends ``BusinessEntity``), each attribute an element with a CRM value type. This script keeps just
entity -> primary key -> attribute -> CRM type name, which is all the mock and the loader need at runtime.

It also writes the string lengths (``crmload/data/limits.json``). The WSDL has no facets (every string is a
bare ``xs:string``), so those come from the tables below: CRM 4.0's entity reference for the common business
attributes (the larger length where versions differ), CRM's "unlimited" ntext for memo/XML/blob fields,
and CRM's default of 100 (left out of the file: ``crmload.limits.DEFAULT_LIMITS`` supplies it) for the
rest. Edit the tables, not the JSON.

Usage::

    python scripts/derive_metadata.py [WSDL] [-o crmload/data/metadata.json] [--limits-out PATH]

The default WSDL path is ``/work/shared/reference/crm-wsdl/crm40-CrmService-2007.wsdl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lxml import etree

DEFAULT_WSDL = Path("/work/shared/reference/crm-wsdl/crm40-CrmService-2007.wsdl")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "crmload" / "data" / "metadata.json"

XS = "http://www.w3.org/2001/XMLSchema"
WS2006 = "http://schemas.microsoft.com/crm/2006/WebServices"
WS2007 = "http://schemas.microsoft.com/crm/2007/WebServices"

#: CRM value types (in the 2006 WebServices namespace) kept as they are.
_CRM_TYPES = frozenset(
    {
        "CrmBoolean",
        "CrmDateTime",
        "CrmDecimal",
        "CrmFloat",
        "CrmMoney",
        "CrmNumber",
        "Customer",
        "EntityNameReference",
        "Key",
        "Lookup",
        "Owner",
        "Picklist",
        "Status",
        "UniqueIdentifier",
    }
)


def _crm_type(type_qname: str, nsmap: dict[str | None, str]) -> str | None:
    """Map an element's schema type to a CRM type name, or None for types the table does not carry."""
    prefix, _, local = type_qname.rpartition(":")
    ns = nsmap.get(prefix or None, "")
    if ns == XS and local == "string":
        return "String"
    if ns == WS2006 and local in _CRM_TYPES:
        return local
    if ns == WS2007 and local.endswith("StateInfo"):
        return "State"
    if ns == WS2007 and local.startswith("ArrayOf") and local.endswith("party"):
        return "PartyList"
    return None


DEFAULT_LIMITS_OUT = DEFAULT_OUT.with_name("limits.json")
_DEFAULT_LENGTH = 100
_UNLIMITED = 1_073_741_823  # ntext / nvarchar(max), as CRM reports a memo without a set length

# Where CRM 4.0 and later versions differ (address lines 50 -> 250, city 50 -> 80, ...), the larger length:
# the loader checks before sending, and a length too small would refuse rows the target accepts.
_ADDRESS = {
    "city": 80, "country": 80, "county": 50, "fax": 50, "line1": 250, "line2": 250, "line3": 250, "name": 200,
    "postalcode": 20, "postofficebox": 20, "stateorprovince": 50, "telephone": 50, "telephone1": 50,
    "telephone2": 50, "telephone3": 50, "upszone": 4, "primarycontactname": 100, "contactname": 150,
}  # fmt: skip
#: Attribute name -> MaxLength, on every entity that has a String attribute of that name.
_BY_NAME = {
    **{f"{p}_{k}": v for p in ("address1", "address2", "shipto", "billto") for k, v in _ADDRESS.items()},
    **{k: v for k, v in _ADDRESS.items() if k not in ("name", "fax", "telephone1", "telephone2", "telephone3")},  # noqa: E501
    "accountnumber": 20, "tickersymbol": 10, "stockexchange": 20, "sic": 20,
    "emailaddress": 100, "emailaddress1": 100, "emailaddress2": 100, "emailaddress3": 100,
    "internalemailaddress": 100, "personalemailaddress": 100, "mobilealertemail": 100,
    "telephone1": 50, "telephone2": 50, "telephone3": 50, "fax": 50, "mobilephone": 50, "pager": 50,
    "homephone": 50, "assistantphone": 50, "managerphone": 50, "phonenumber": 200,
    "websiteurl": 200, "ftpsiteurl": 200,
    "firstname": 50, "lastname": 50, "middlename": 50, "fullname": 160, "nickname": 100, "salutation": 100,
    "suffix": 10, "jobtitle": 100, "department": 100, "yomifirstname": 150, "yomilastname": 150,
    "yomimiddlename": 150, "yomifullname": 450, "yominame": 160, "assistantname": 100, "managername": 100,
    "spousesname": 100, "childrensnames": 255, "governmentid": 50, "employeeid": 50, "companyname": 100,
    "yomicompanyname": 100, "subject": 400, "title": 200, "description": 2000, "notetext": 100_000,
    "ticketnumber": 100, "invoicenumber": 100, "ordernumber": 100, "quotenumber": 100,
}  # fmt: skip
#: Memo, XML and blob fields: no practical limit (every name ending in "xml" is one too).
_MEMO = frozenset(
    str.split(
        "data body bodytext bodybinary content documentbody message eventdata parameters configuration "
        "secureconfig rules uidata activities pagedatatopost newsarticle overview strengths threats "
        "weaknesses opportunities keyproduct constraints skills objective objectiveexpression comments "
        "commenttext queryinfo additionalinfo errordescription picture headerrow additionalheaderrow "
        "columnvalue abstract keywords customcomment userprofile filteringattributes attributes "
        "entityattributes featureset"
    )
)
#: (entity, attribute) -> MaxLength where an entity differs from the name's rule.
_BY_ENTITY = {
    ("account", "name"): 160, ("opportunity", "name"): 300, ("quote", "name"): 300,
    ("salesorder", "name"): 300, ("invoice", "name"): 300, ("campaign", "name"): 128,
    ("lead", "subject"): 300, ("annotation", "subject"): 500, ("kbarticle", "title"): 500,
    ("subject", "title"): 500, ("contract", "title"): 100, ("email", "description"): _UNLIMITED,
    ("kbarticle", "description"): _UNLIMITED,
}  # fmt: skip


_QUANTITY = {"precision": 5}
#: CrmDecimal attributes whose precision or range differs from CRM's default (2 places, +/-100,000,000,000).
_DECIMALS: dict[str, dict[str, object]] = {
    "exchangerate": {"precision": 10, "min_value": "0.0000000001", "max_value": "100000000000"},
    **dict.fromkeys(("quantity", "quantitybackordered", "quantitycancelled", "quantityshipped"), _QUANTITY),
    **dict.fromkeys(
        ("highquantity", "lowquantity", "quantityonhand", "stockvolume", "stockweight"), _QUANTITY
    ),
}


def max_length(entity: str, attribute: str) -> int:
    """Return the MaxLength crmload assumes for a String attribute (see the module docstring)."""
    if (entity, attribute) in _BY_ENTITY:
        return _BY_ENTITY[entity, attribute]
    if attribute in _MEMO or attribute.endswith("xml"):
        return _UNLIMITED
    return _BY_NAME.get(attribute, _DEFAULT_LENGTH)


def derive_limits(table: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """Return ``{entity: {"attributes": {name: {"max_length": n}}}}`` for lengths other than the default."""
    out: dict[str, dict[str, object]] = {}
    for entity, spec in table.items():
        attrs = spec["attributes"]
        assert isinstance(attrs, dict)
        lengths = {a: max_length(entity, a) for a, t in attrs.items() if t == "String"}
        kept: dict[str, object] = {a: {"max_length": n} for a, n in lengths.items() if n != _DEFAULT_LENGTH}
        kept.update({a: _DECIMALS[a] for a, t in attrs.items() if t == "CrmDecimal" and a in _DECIMALS})
        kept = dict(sorted(kept.items()))
        if kept:
            out[entity] = {"attributes": kept}
    return out


def _limits_json(limits: dict[str, dict[str, object]]) -> str:
    """Render the limits table with one attribute per line, so a changed length is a one-line diff."""
    blocks = []
    for entity, spec in limits.items():
        attrs = spec["attributes"]
        assert isinstance(attrs, dict)
        rows = ",\n".join(f"   {json.dumps(a)}: {json.dumps(v)}" for a, v in attrs.items())
        blocks.append(f'  {json.dumps(entity)}: {{"attributes": {{\n{rows}\n  }}}}')
    source = json.dumps("scripts/derive_metadata.py tables (CRM 4.0 entity reference)")
    return f'{{"source": {source}, "entities": {{\n' + ",\n".join(blocks) + "\n}}\n"


def derive(wsdl: Path) -> dict[str, dict[str, object]]:
    """Return ``{entity: {"primary_key": str, "attributes": {name: type}}}`` for every typed entity."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    root = etree.parse(str(wsdl), parser).getroot()
    out: dict[str, dict[str, object]] = {}
    for schema in root.iter(f"{{{XS}}}schema"):
        if schema.get("targetNamespace") != WS2007:
            continue
        for ctype in schema.findall(f"{{{XS}}}complexType"):
            ext = ctype.find(f"{{{XS}}}complexContent/{{{XS}}}extension")
            if ext is None or not ext.get("base", "").endswith(":BusinessEntity"):
                continue
            name = ctype.get("name", "")
            attrs: dict[str, str] = {}
            for el in ext.iter(f"{{{XS}}}element"):
                crm = _crm_type(el.get("type", ""), el.nsmap)
                if crm is not None:
                    attrs[el.get("name", "")] = crm
            keys = [a for a, t in attrs.items() if t == "Key"]
            primary = f"{name}id" if attrs.get(f"{name}id") == "Key" else (keys[0] if keys else f"{name}id")
            attrs.setdefault(primary, "Key")
            out[name] = {"primary_key": primary, "attributes": dict(sorted(attrs.items()))}
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, derive the table and write it as compact JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wsdl", nargs="?", type=Path, default=DEFAULT_WSDL, help="CRM 4.0 CrmService WSDL")
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output JSON (default: package data)")
    ap.add_argument("--limits-out", type=Path, default=DEFAULT_LIMITS_OUT, help="string lengths JSON")
    args = ap.parse_args(argv)
    table = derive(args.wsdl)
    doc = {"source": args.wsdl.name, "entities": table}
    args.out.write_text(json.dumps(doc, separators=(",", ":"), sort_keys=False) + "\n", encoding="utf-8")
    args.limits_out.write_text(_limits_json(derive_limits(table)), encoding="utf-8")
    n_attrs = sum(len(e["attributes"]) for e in table.values())  # type: ignore[arg-type]
    print(f"wrote {args.out}: {len(table)} entities, {n_attrs} attributes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

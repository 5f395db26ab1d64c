"""Derive crmload's compact entity metadata table from the real CRM 4.0 CrmService WSDL.

The WSDL is organisation-specific: it carries one strongly typed class per entity (an ``xs:complexType`` that
extends ``BusinessEntity``), each attribute an element with a CRM value type. This script keeps just
entity -> primary key -> attribute -> CRM type name, which is all the mock and the loader need at runtime.

Usage::

    python scripts/derive_metadata.py [WSDL] [-o crmload/data/metadata.json]

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
    args = ap.parse_args(argv)
    table = derive(args.wsdl)
    doc = {"source": args.wsdl.name, "entities": table}
    args.out.write_text(json.dumps(doc, separators=(",", ":"), sort_keys=False) + "\n", encoding="utf-8")
    n_attrs = sum(len(e["attributes"]) for e in table.values())  # type: ignore[arg-type]
    print(f"wrote {args.out}: {len(table)} entities, {n_attrs} attributes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

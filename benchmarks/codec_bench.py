"""Codec micro-benchmark: µs per record to build a Create envelope (template vs lxml vs zeep) and to parse.

Run: ``python benchmarks/codec_bench.py [--wsdl PATH] [--out benchmarks/results/codec.json]``. Prints a table
and writes JSON. Nothing asserts on the numbers; compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout, installed or not

from crmload.soap import Codec2007
from crmload.soap.ns import CORE2007, NO_CALLER, SOAP11_ENV, WS2006, WS2007, XSI
from crmload.types import Lookup, Money, Picklist

ROOT = Path(__file__).resolve().parents[1]
GUID = UUID("a1b2c3d4-0000-0000-0000-000000000001")
RECORD: dict[str, Any] = {
    "name": "Contoso & Sons <Ltd>",
    "telephone1": "555-0100",
    "emailaddress1": "info@contoso.example",
    "description": 'A line\r\nanother line with "quotes" and ]]>',
    "numberofemployees": 250,
    "revenue": Money("1500250.75"),
    "industrycode": Picklist(2),
    "primarycontactid": Lookup("contact", GUID),
    "donotemail": False,
    "lastusedincampaign": datetime(2024, 5, 17, 9, 30, tzinfo=timezone.utc),
}
KINDS = {
    str: "StringProperty",
    int: "CrmNumberProperty",
    bool: "CrmBooleanProperty",
    Money: "CrmMoneyProperty",
    Picklist: "PicklistProperty",
    Lookup: "LookupProperty",
    datetime: "CrmDateTimeProperty",
}


def per_record_us(fn: Callable[[], object], *, min_time: float = 0.4, repeats: int = 5) -> float:
    """Best-of-``repeats`` µs per call, each repeat running for at least ``min_time`` seconds."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - start >= min_time / 4:
            break
        n *= 2
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def lxml_build(org: str, entity: str, attrs: dict[str, Any]) -> bytes:
    """The same Create envelope built as an lxml tree: the alternative to templates."""
    q = etree.QName
    env = etree.Element(q(SOAP11_ENV, "Envelope"), nsmap={"soap": SOAP11_ENV, "xsi": XSI, "q1": WS2006})
    token = etree.SubElement(
        etree.SubElement(env, q(SOAP11_ENV, "Header")), q(WS2007, "CrmAuthenticationToken")
    )
    for tag, text in (("AuthenticationType", "0"), ("OrganizationName", org), ("CallerId", NO_CALLER)):
        etree.SubElement(token, q(CORE2007, tag)).text = text
    create = etree.SubElement(etree.SubElement(env, q(SOAP11_ENV, "Body")), q(WS2007, "Create"))
    ent = etree.SubElement(create, q(WS2007, "entity"), {q(XSI, "type"): "q1:DynamicEntity", "Name": entity})
    props = etree.SubElement(ent, q(WS2006, "Properties"))
    for name, value in attrs.items():
        kind = KINDS[type(value)]
        prop = etree.SubElement(props, q(WS2006, "Property"), {q(XSI, "type"): "q1:" + kind, "Name": name})
        el = etree.SubElement(prop, q(WS2006, "Value"))
        if isinstance(value, Lookup):
            el.set("type", value.entity)
            el.text = str(value.id)
        elif isinstance(value, (Money, Picklist)):
            el.text = str(value.value)
        elif isinstance(value, bool):
            el.text = "true" if value else "false"
        elif isinstance(value, datetime):
            el.text = value.isoformat()
        else:
            el.text = str(value)  # lxml escapes, and rejects control characters itself
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def zeep_builder(wsdl: Path) -> Callable[[], bytes] | None:
    if not wsdl.is_file():
        return None
    from crmload.soap.wsdl import load_client

    client = load_client(wsdl)

    def t(name: str) -> Any:
        return client.get_type(f"{{{WS2006}}}{name}")

    values = {
        "CrmNumberProperty": "CrmNumber",
        "CrmBooleanProperty": "CrmBoolean",
        "CrmMoneyProperty": "CrmMoney",
        "PicklistProperty": "Picklist",
        "LookupProperty": "Lookup",
        "CrmDateTimeProperty": "CrmDateTime",
    }
    header = {
        "CrmAuthenticationToken": {
            "AuthenticationType": 0,
            "OrganizationName": "Contoso",
            "CallerId": NO_CALLER,
        }
    }

    def build() -> bytes:
        props = []
        for name, value in RECORD.items():
            kind = KINDS[type(value)]
            if kind == "StringProperty":
                props.append(t(kind)(Name=name, Value=value))
                continue
            raw: Any = value
            extra: dict[str, Any] = {}
            if isinstance(value, Lookup):
                raw, extra = str(value.id), {"type": value.entity}
            elif isinstance(value, (Money, Picklist)):
                raw = value.value
            elif isinstance(value, datetime):
                raw = value.isoformat()
            props.append(t(kind)(Name=name, Value=t(values[kind])(_value_1=raw, **extra)))
        entity = t("DynamicEntity")(Name="account", Properties={"Property": props})
        message = client.create_message(client.service, "Create", entity=entity, _soapheaders=header)
        return bytes(etree.tostring(message, xml_declaration=True, encoding="utf-8"))

    return build


def retrieve_response(codec: Codec2007) -> bytes:
    props = etree.fromstring(codec.build_create("account", RECORD)).find(f".//{{{WS2006}}}Properties")
    return (
        f'<soap:Envelope xmlns:soap="{SOAP11_ENV}" xmlns:xsi="{XSI}"><soap:Body>'
        f'<ExecuteResponse xmlns="{WS2007}"><Response xsi:type="RetrieveResponse">'
        f'<q1:BusinessEntity xmlns:q1="{WS2006}" xsi:type="q1:DynamicEntity" '
        f'Name="account">{etree.tostring(props).decode()}</q1:BusinessEntity></Response></ExecuteResponse>'
        "</soap:Body></soap:Envelope>"
    ).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wsdl", type=Path, default=ROOT.parent / "shared/reference/crm-wsdl/crm40-CrmService-2007.wsdl"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/codec.json")
    args = parser.parse_args(argv)

    codec = Codec2007("Contoso")
    create_response = (
        f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Body><CreateResponse xmlns="{WS2007}">'
        f"<CreateResult>{GUID}</CreateResult></CreateResponse></soap:Body></soap:Envelope>"
    ).encode()
    retrieve = retrieve_response(codec)
    assert codec.parse_retrieve(retrieve) == RECORD  # the benchmark measures a correct round trip
    results: dict[str, float | None] = {
        "build_create_template_us": per_record_us(lambda: codec.build_create("account", RECORD, id=GUID)),
        "build_create_lxml_us": per_record_us(lambda: lxml_build("Contoso", "account", RECORD)),
        "build_create_zeep_us": None,
        "parse_create_us": per_record_us(lambda: codec.parse_create(create_response)),
        "parse_retrieve_10_attrs_us": per_record_us(lambda: codec.parse_retrieve(retrieve)),
    }
    zeep_build = zeep_builder(args.wsdl)
    if zeep_build is not None:
        results["build_create_zeep_us"] = per_record_us(zeep_build, min_time=1.0, repeats=3)
    report = {
        "benchmark": "codec",
        "record_attributes": len(RECORD),
        "results": {k: (round(v, 2) if v is not None else None) for k, v in results.items()},
        "python": sys.version.split()[0],
        "lxml": ".".join(map(str, etree.LXML_VERSION)),
        "machine": platform.machine(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report["results"].items():
        print(f"{key:32} {'n/a' if value is None else f'{value:10.2f} µs'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

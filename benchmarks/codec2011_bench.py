"""Organization-service codec micro-benchmark: µs per record for an ExecuteMultiple of 1,000 creates.

Measures, per record, at batch sizes 1, 10, 100 and 1,000: building the ExecuteMultiple envelope, and parsing
its answer (one CreateResponse per item). Both are client CPU the loader pays per record on the 2011 path;
the goal is ≤ 30 µs per record at 1,000, building and parsing together.

zeep builds the same ExecuteMultiple from the real 2011 WSDL (extended by ``soap.wsdl2011``) for comparison,
and the run checks that both envelopes are the same XML (Canonical XML 2.0) before timing anything.

It then measures the whole client (codec, limiter, retry wrapper, transport, socket I/O) end to end:
``CrmClient.create_many`` of 20,000 records against the mock CRM in another process, with the client
process's CPU time per record (``time.process_time``) at batch sizes 100 and 1,000.

Run: ``python benchmarks/codec2011_bench.py [--wsdl PATH] [--out benchmarks/results/codec2011.json]``. Prints
a table and writes JSON. Nothing asserts on the numbers; compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout, installed or not

from benchmarks.codec_bench import RECORD, per_record_us
from crmload.batch import CreateRequest
from crmload.soap.codec2011 import Codec2011
from crmload.soap.ns import COLLECTIONS, SERIALIZATION, SOAP11_ENV, XRM2011, XRM2011_SERVICES, XRM2012, XSI
from crmload.types import Lookup, Money, Picklist

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1, 10, 100, 1000)
GOAL_US = 30.0


def execute_multiple_response(n: int) -> bytes:
    """The answer a server gives to ``n`` creates with ReturnResponses=true: one CreateResponse per item."""
    items = "".join(
        '<l:ExecuteMultipleResponseItem><l:Fault i:nil="true"/>'
        f"<l:RequestIndex>{i}</l:RequestIndex>"
        '<l:Response i:type="a:CreateResponse"><a:ResponseName>Create</a:ResponseName><a:Results>'
        f'<a:KeyValuePairOfstringanyType><b:key>id</b:key><b:value i:type="e:guid">{UUID(int=i + 1)}'
        "</b:value></a:KeyValuePairOfstringanyType></a:Results></l:Response></l:ExecuteMultipleResponseItem>"
        for i in range(n)
    )
    return (
        f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body><ExecuteResponse xmlns="{XRM2011_SERVICES}">'
        f'<ExecuteResult xmlns:a="{XRM2011}" xmlns:i="{XSI}" xmlns:b="{COLLECTIONS}" xmlns:l="{XRM2012}" '
        f'xmlns:e="{SERIALIZATION}" xmlns:c="http://www.w3.org/2001/XMLSchema" '
        'i:type="a:ExecuteMultipleResponse">'
        "<a:ResponseName>ExecuteMultiple</a:ResponseName><a:Results>"
        '<a:KeyValuePairOfstringanyType><b:key>IsFaulted</b:key><b:value i:type="c:boolean">false</b:value>'
        "</a:KeyValuePairOfstringanyType><a:KeyValuePairOfstringanyType><b:key>Responses</b:key>"
        f'<b:value i:type="l:OrganizationResponseCollection">{items}</b:value>'
        "</a:KeyValuePairOfstringanyType>"
        "</a:Results></ExecuteResult></ExecuteResponse></s:Body></s:Envelope>"
    ).encode()


def zeep_execute_multiple(wsdl: Path) -> tuple[Any, Callable[[Sequence[Mapping[str, Any]]], Any]] | None:
    """A zeep client on the real 2011 WSDL (extended) and a maker: account records -> ExecuteMultipleRequest.

    The request is zeep's own objects (ContinueOnError and ReturnResponses true), ready for
    ``client.create_message`` or for a service's ``Execute(request=...)``. None when the WSDL is not there.
    """
    if not wsdl.is_file():
        return None
    from zeep import xsd

    from crmload.soap.wsdl import load_client
    from crmload.soap.wsdl2011 import org_service_wsdl

    client = load_client(org_service_wsdl(wsdl))

    def t(ns: str, name: str) -> Any:
        return client.get_type(f"{{{ns}}}{name}")

    kv, entity_t = t(COLLECTIONS, "KeyValuePairOfstringanyType"), t(XRM2011, "Entity")
    osv, money, ref = t(XRM2011, "OptionSetValue"), t(XRM2011, "Money"), t(XRM2011, "EntityReference")
    simple = {str: xsd.String(), int: xsd.Int(), bool: xsd.Boolean()}

    def value(v: Any) -> Any:
        if isinstance(v, Money):
            return xsd.AnyObject(money, money(Value=v.value))
        if isinstance(v, Picklist):
            return xsd.AnyObject(osv, osv(Value=v.value))
        if isinstance(v, Lookup):
            return xsd.AnyObject(ref, ref(Id=str(v.id), LogicalName=v.entity))
        if isinstance(v, datetime):
            return xsd.AnyObject(xsd.DateTime(), v.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return xsd.AnyObject(simple[type(v)], v)

    def request(record: Mapping[str, Any]) -> Any:
        attrs = t(XRM2011, "AttributeCollection")(
            KeyValuePairOfstringanyType=[kv(key=k, value=value(v)) for k, v in record.items()]
        )
        target = kv(
            key="Target", value=xsd.AnyObject(entity_t, entity_t(Attributes=attrs, LogicalName="account"))
        )
        params = t(XRM2011, "ParameterCollection")(KeyValuePairOfstringanyType=[target])
        return t(XRM2011, "CreateRequest")(Parameters=params, RequestId=xsd.Nil, RequestName="Create")

    def execute_multiple(records: Sequence[Mapping[str, Any]]) -> Any:
        items = t(XRM2012, "OrganizationRequestCollection")(OrganizationRequest=[request(r) for r in records])
        settings = t(XRM2012, "ExecuteMultipleSettings")(ContinueOnError=True, ReturnResponses=True)
        params = t(XRM2011, "ParameterCollection")(
            KeyValuePairOfstringanyType=[
                kv(key="Requests", value=xsd.AnyObject(t(XRM2012, "OrganizationRequestCollection"), items)),
                kv(key="Settings", value=xsd.AnyObject(t(XRM2012, "ExecuteMultipleSettings"), settings)),
            ]
        )
        return t(XRM2011, "ExecuteMultipleRequest")(
            Parameters=params, RequestId=xsd.Nil, RequestName="ExecuteMultiple"
        )

    return client, execute_multiple


def zeep_builder(wsdl: Path, size: int) -> Callable[[], bytes] | None:
    """The same ExecuteMultiple of ``size`` creates built by zeep from the real 2011 WSDL (extended)."""
    parts = zeep_execute_multiple(wsdl)
    if parts is None:
        return None
    client, execute_multiple = parts

    def build() -> bytes:
        em = execute_multiple([RECORD] * size)
        message = client.create_message(client.service, "Execute", request=em)
        return bytes(etree.tostring(message, xml_declaration=True, encoding="utf-8"))

    return build


def _operation_c14n(envelope: bytes) -> str:
    body = next(el for el in etree.fromstring(envelope) if etree.QName(el).localname == "Body")
    text = etree.tostring(body[0], encoding="unicode")
    return str(ET.canonicalize(xml_data=text, rewrite_prefixes=True, qname_aware_attrs=[f"{{{XSI}}}type"]))


def zeep_results(wsdl: Path, codec: Codec2011) -> dict[str, Any]:
    """zeep's µs per record to build a 100-create ExecuteMultiple, after checking it equals ours."""
    size = 100
    build = zeep_builder(wsdl, size)
    if build is None:
        return {"zeep_build_us_per_record_at_100": None, "zeep_equals_ours": None}
    ours = codec.build_execute_multiple([CreateRequest("account", RECORD) for _ in range(size)])
    same = _operation_c14n(build()) == _operation_c14n(ours)
    us = per_record_us(build, min_time=1.0, repeats=3) / size
    return {"zeep_build_us_per_record_at_100": round(us, 1), "zeep_equals_ours": same}


def client_cpu(records: int = 20_000, sizes: tuple[int, ...] = (100, 1000)) -> list[dict[str, Any]]:
    """Client-process CPU µs per record for ``create_many`` against a mock CRM running in another process."""
    from crmload import CrmClient

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    cmd = [sys.executable, "-m", "crmload", "mock", "--port", str(port), "--no-integrity"]
    mock = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    rows = []
    try:
        for _ in range(100):  # wait for the listener, without a fixed sleep
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        record = {k: v for k, v in RECORD.items() if not isinstance(v, Lookup)}  # no lookup targets there
        for size in sizes:
            with CrmClient(f"http://127.0.0.1:{port}/", rate="unlimited") as client:
                warm = [CreateRequest("account", record)] * size
                client.execute_multiple(warm, batch_size=size)  # warm: connection, caches
                cpu, wall = time.process_time(), time.perf_counter()
                requests = [CreateRequest("account", record) for _ in range(records)]
                results = client.execute_multiple(requests, batch_size=size)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            ok = sum(isinstance(r, UUID) for r in results)
            rows.append(
                {
                    "batch_size": size,
                    "records": records,
                    "created": ok,
                    "client_cpu_us_per_record": round(cpu / records * 1e6, 1),
                    "records_per_s": round(records / wall),
                }
            )
    finally:
        mock.terminate()
        mock.wait()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/codec2011.json")
    parser.add_argument(
        "--wsdl",
        type=Path,
        default=ROOT.parent / "shared/reference/crm-wsdl/xrm2011-Organization.svc-onprem-AD.singleWsdl.wsdl",
    )
    args = parser.parse_args(argv)

    codec = Codec2011(sdk_version=None)  # zeep sends no SdkClientVersion header; compare like with like
    rows = []
    for size in SIZES:
        requests = [CreateRequest("account", RECORD) for _ in range(size)]
        keyed = [CreateRequest("account", RECORD, UUID(int=i + 1)) for i in range(size)]
        answer = execute_multiple_response(size)
        assert codec.parse_execute_multiple(answer, requests) == [UUID(int=i + 1) for i in range(size)]
        build = per_record_us(lambda r=requests: codec.build_execute_multiple(r)) / size  # type: ignore[misc]
        build_keyed = per_record_us(lambda r=keyed: codec.build_execute_multiple(r)) / size  # type: ignore[misc]
        parse = per_record_us(lambda a=answer, r=requests: codec.parse_execute_multiple(a, r)) / size  # type: ignore[misc]
        rows.append(
            {
                "batch_size": size,
                "build_us_per_record": round(build, 2),
                "build_keyed_us_per_record": round(build_keyed, 2),
                "parse_us_per_record": round(parse, 2),
                "codec_us_per_record": round(build + parse, 2),
                "request_bytes_per_record": round(len(codec.build_execute_multiple(requests)) / size),
            }
        )
    at_1000 = rows[-1]["codec_us_per_record"]
    whole = client_cpu()
    client_1000 = whole[-1]["client_cpu_us_per_record"]
    report = {
        "benchmark": "codec2011",
        "record_attributes": len(RECORD),
        "results": rows,
        "goal_us_per_record_at_1000": GOAL_US,
        "zeep": zeep_results(args.wsdl, codec),
        "client": whole,
        "verdict": (
            f"codec CPU {at_1000} µs/record and whole-client CPU {client_1000} µs/record at batch 1,000: "
            + ("within" if client_1000 <= GOAL_US else "over")
            + f" the {GOAL_US:g} µs goal"
        ),
        "python": sys.version.split()[0],
        "lxml": ".".join(map(str, etree.LXML_VERSION)),
        "machine": platform.machine(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'batch':>6} {'build':>8} {'keyed':>8} {'parse':>8} {'total':>8}  µs/record")
    for row in rows:
        print(
            f"{row['batch_size']:>6} {row['build_us_per_record']:>8} {row['build_keyed_us_per_record']:>8} "
            f"{row['parse_us_per_record']:>8} {row['codec_us_per_record']:>8}"
        )
    for row in whole:
        print(
            f"client, batch {row['batch_size']}: {row['client_cpu_us_per_record']} µs CPU/record, "
            f"{row['records_per_s']} records/s against the mock"
        )
    print(report["verdict"])
    print(f"zeep, same envelope: {report['zeep']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Organization-service codec micro-benchmark: µs per record for an ExecuteMultiple of 1,000 creates.

Measures, per record, at batch sizes 1, 10, 100 and 1,000: building the ExecuteMultiple envelope, and parsing
its answer (one CreateResponse per item). Both are client CPU the loader pays per record on the 2011 path;
the goal is ≤ 30 µs per record at 1,000, building and parsing together.

Run: ``python benchmarks/codec2011_bench.py [--out benchmarks/results/codec2011.json]``. Prints a table and
writes JSON. Nothing asserts on the numbers; compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout, installed or not

from benchmarks.codec_bench import RECORD, per_record_us
from crmload.batch import CreateRequest
from crmload.soap.codec2011 import Codec2011
from crmload.soap.ns import COLLECTIONS, SERIALIZATION, SOAP11_ENV, XRM2011, XRM2011_SERVICES, XRM2012, XSI

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/codec2011.json")
    args = parser.parse_args(argv)

    codec = Codec2011()
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
    report = {
        "benchmark": "codec2011",
        "record_attributes": len(RECORD),
        "results": rows,
        "goal_us_per_record_at_1000": GOAL_US,
        "verdict": (
            f"codec CPU {at_1000} µs/record at batch 1,000: "
            + ("within" if at_1000 <= GOAL_US else "over")
            + f" the {GOAL_US:g} µs goal (transport and client overhead not included)"
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
    print(report["verdict"])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

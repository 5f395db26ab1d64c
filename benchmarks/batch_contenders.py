"""Batch contenders: creates in ExecuteMultiple batches, run as ``python -m benchmarks.batch_contenders``.

One process per run, so its CPU is its own (the mock runs in another process). The process sends one warm-up
batch (connection, caches), then ``--count`` records in batches of ``--batch``, and prints one JSON object on
stdout. CPU (``time.process_time``) and wall time are summed around the client calls only: building the plain
record dicts, which both contenders take as input, is outside the clock.

Contenders:
- ``crmload``: ``CrmClient.create_many`` of one batch per call, on the Organization service (SOAP 1.1,
  ``…/Organization.svc/web``), ``rate="unlimited"``.
- ``zeep``: a zeep ``Client`` on the real 2011 WSDL (extended by ``soap.wsdl2011``) over a pooled
  ``requests.Session``; ``Execute(ExecuteMultipleRequest)`` of the same creates, built by
  ``codec2011_bench.zeep_execute_multiple`` (checked C14N-equal to crmload's there), through the WSDL's own
  binding: SOAP 1.2 at ``…/Organization.svc``, which the mock serves on the same store. Each answer is
  parsed by zeep and every item's id is read out, as a script would.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.codec_bench import RECORD
from benchmarks.contenders import _audit, connects_attempted
from crmload.types import Lookup

WSDL = (
    Path(__file__).resolve().parent.parent.parent
    / "shared/reference/crm-wsdl/xrm2011-Organization.svc-onprem-AD.singleWsdl.wsdl"
)
ORG_PATH = "/XRMServices/2011/Organization.svc"
ENTITY = "account"
#: The codec benchmark's record without its lookup (the mock faults a lookup to a contact it does not hold):
#: strings with characters to escape, an int, Money, an OptionSetValue, a boolean and a UTC date-time.
BASE = {k: v for k, v in RECORD.items() if not isinstance(v, Lookup)}

#: Sends one batch of records; returns how many items came back created.
Send = Callable[[Sequence[Mapping[str, Any]]], int]


def record(tag: str, i: int) -> dict[str, Any]:
    """Record ``i`` of a run: the same attributes for both contenders, a distinct name."""
    return {**BASE, "name": f"{BASE['name']} {tag} {i}"}


def make_crmload(base_url: str) -> tuple[Send, Callable[[], None]]:
    """``CrmClient.create_many`` per batch; returns how many items came back as ids."""
    import uuid

    from crmload.client import CrmClient

    client = CrmClient(base_url + ORG_PATH + "/web", rate="unlimited")

    def send(records: Sequence[Mapping[str, Any]]) -> int:
        return sum(isinstance(r, uuid.UUID) for r in client.create_many(ENTITY, records))

    return send, client.close


def make_zeep(base_url: str) -> tuple[Send, Callable[[], None]]:
    """zeep's ``Execute(ExecuteMultipleRequest)`` over a pooled Session; returns how many items got an id."""
    import requests
    import zeep
    from requests.adapters import HTTPAdapter

    from benchmarks.codec2011_bench import zeep_execute_multiple

    parts = zeep_execute_multiple(WSDL)
    if parts is None:
        raise SystemExit(f"the 2011 WSDL is not at {WSDL}")
    loaded, execute_multiple = parts
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=1))
    # The cached client's WSDL and types, with a transport of our own: the pooled Session.
    client = zeep.Client(loaded.wsdl, transport=zeep.Transport(session=session, operation_timeout=300))
    binding = "{http://schemas.microsoft.com/xrm/2011/Contracts/Services}CustomBinding_IOrganizationService"
    service = client.create_service(binding, base_url + ORG_PATH)

    def send(records: Sequence[Mapping[str, Any]]) -> int:
        answer = service.Execute(request=execute_multiple(records))
        ok = 0
        for pair in answer.Results.KeyValuePairOfstringanyType:
            if pair.key != "Responses":
                continue
            for item in pair.value.ExecuteMultipleResponseItem:
                fault = item.Fault
                if (fault is None or fault.ErrorCode is None) and item.Response is not None:
                    ids = [kv.value for kv in item.Response.Results.KeyValuePairOfstringanyType]
                    ok += bool(ids and ids[0])
        return ok

    return send, session.close


FACTORIES = {"crmload": make_crmload, "zeep": make_zeep}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Warm up with one batch, then send ``args.count`` records in batches; return the result document."""
    send, close = FACTORIES[args.contender](args.url.rstrip("/"))
    warm = min(args.batch, args.count)
    warm_ok = send([record(args.tag + "w", i) for i in range(warm)])
    connects0 = connects_attempted()
    cpu = wall = 0.0
    ok = batches = 0
    for start in range(0, args.count, args.batch):
        records = [record(args.tag, i) for i in range(start, min(start + args.batch, args.count))]
        c0, w0 = time.process_time(), time.perf_counter()
        ok += send(records)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        batches += 1
    close()
    return {
        "contender": args.contender,
        "batch": args.batch,
        "count": args.count,
        "batches": batches,
        "ok": ok,
        "warmup_records": warm,
        "warmup_ok": warm_ok,
        "sent": warm + args.count,
        "connects_after_warmup": connects_attempted() - connects0,
        "wall_s": wall,
        "cpu_s": cpu,
        "records_per_s": ok / wall if wall > 0 else 0.0,
        "cpu_us_per_record": cpu / ok * 1e6 if ok else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Run one contender and print its JSON result on stdout."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.batch_contenders")
    p.add_argument("contender", choices=sorted(FACTORIES))
    p.add_argument("--url", required=True, help="the mock's base URL (http://host:port)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--tag", default="r")
    args = p.parse_args(argv)
    sys.addaudithook(_audit)
    json.dump(run(args), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Records/s of the mock's Organization service for ExecuteMultiple batches of creates, on keep-alive sockets.

The mock runs as its own process (``python -m crmload mock --port 0``) so the load generator never shares its
GIL. Each client process posts the same prebuilt ``Execute(ExecuteMultiple)`` of ``--batch`` CreateRequests
(3 attributes each: a string, an int, a Money; ReturnResponses=true, so every new id comes back) over one
``http.client`` connection, for ``--seconds``.

Usage: ``python -m benchmarks.mock_batch_throughput [--seconds 8] [--batch 1000] [--connections 1 2]``.
Writes ``benchmarks/results/mock_batch_throughput.json``. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import platform
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

RESULTS = Path(__file__).resolve().parent / "results" / "mock_batch_throughput.json"
REPO = Path(__file__).resolve().parent.parent
SVC = "http://schemas.microsoft.com/xrm/2011/Contracts/Services"
ACTION = SVC + "/IOrganizationService/Execute"
PATH = "/XRMServices/2011/Organization.svc/web"
_DECL = (
    f'xmlns="{SVC}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:a="http://schemas.microsoft.com/xrm/2011/Contracts" '
    'xmlns:b="http://schemas.datacontract.org/2004/07/System.Collections.Generic" '
    'xmlns:c="http://www.w3.org/2001/XMLSchema" xmlns:l="http://schemas.microsoft.com/xrm/2012/Contracts"'
)


def _kv(key: str, value: str) -> str:
    return f"<a:KeyValuePairOfstringanyType><b:key>{key}</b:key>{value}</a:KeyValuePairOfstringanyType>"


def batch_body(size: int) -> bytes:
    """One Execute(ExecuteMultiple) envelope of ``size`` account creates."""
    items = []
    for n in range(size):
        attrs = (
            _kv("name", f'<b:value i:type="c:string">Contoso {n}</b:value>')
            + _kv("numberofemployees", '<b:value i:type="c:int">12</b:value>')
            + _kv("creditlimit", '<b:value i:type="a:Money"><a:Value>1500.25</a:Value></b:value>')
        )
        entity = (
            f'<b:value i:type="a:Entity"><a:Attributes>{attrs}</a:Attributes><a:EntityState i:nil="true"/>'
            "<a:FormattedValues/><a:Id>00000000-0000-0000-0000-000000000000</a:Id>"
            "<a:LogicalName>account</a:LogicalName><a:RelatedEntities/></b:value>"
        )
        items.append(
            f'<l:OrganizationRequest i:type="a:CreateRequest"><a:Parameters>{_kv("Target", entity)}'
            '</a:Parameters><a:RequestId i:nil="true"/><a:RequestName>Create</a:RequestName>'
            "</l:OrganizationRequest>"
        )
    settings = (
        '<b:value i:type="l:ExecuteMultipleSettings"><l:ContinueOnError>true</l:ContinueOnError>'
        "<l:ReturnResponses>true</l:ReturnResponses></b:value>"
    )
    params = _kv("Requests", f'<b:value i:type="l:OrganizationRequestCollection">{"".join(items)}</b:value>')
    request = (
        f'<request i:type="a:ExecuteMultipleRequest"><a:Parameters>{params}{_kv("Settings", settings)}'
        '</a:Parameters><a:RequestId i:nil="true"/><a:RequestName>ExecuteMultiple</a:RequestName></request>'
    )
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        f"<Execute {_DECL}>{request}</Execute></s:Body></s:Envelope>"
    ).encode()


def _client(url: str, body: bytes, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": ACTION}
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        conn.request("POST", PATH, body, headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200 or b'IsFaulted</b:key><b:value i:type="c:boolean">false' not in data:
            raise SystemExit(f"unexpected answer {resp.status}: {data[:300]!r}")
        done += 1
    out.put((done, time.perf_counter() - start))


def measure(url: str, body: bytes, connections: int, seconds: float) -> tuple[int, float]:
    """Run ``connections`` client processes; return (batches answered, wall seconds)."""
    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [mp.Process(target=_client, args=(url, body, seconds, queue)) for _ in range(connections)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(r[0] for r in results), max(r[1] for r in results)


def main(argv: list[str] | None = None) -> int:
    """Start the mock, measure each connection count, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--connections", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    server = subprocess.Popen(
        [sys.executable, "-m", "crmload", "mock", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip().split("/MSCRMServices", 1)[0]
        body = batch_body(args.batch)
        runs = []
        for conns in args.connections:
            batches, wall = measure(base, body, conns, args.seconds)
            rate = batches * args.batch / wall
            runs.append(
                {
                    "connections": conns,
                    "batches": batches,
                    "seconds": round(wall, 2),
                    "records_per_s": round(rate),
                }
            )
            print(
                f"{conns} connection(s): {batches} batches of {args.batch} in {wall:.1f} s "
                f"= {rate:,.0f} records/s"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
    doc = {
        "scenario": "mock Organization service, Execute(ExecuteMultiple) of creates, ReturnResponses=true",
        "batch": args.batch,
        "request_bytes": len(body),
        "python": platform.python_version(),
        "cpus": mp.cpu_count(),
        "runs": runs,
    }
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

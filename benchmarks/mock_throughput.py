"""Requests/s of the mock CRM on keep-alive connections: Create (DynamicEntity) envelopes, no faults.

The mock runs as its own process (``python -m crmload mock --port 0``) so the load generator never shares
its GIL.
The load tool is ``wrk`` with a Lua script posting one Create envelope (``apt-get install -y wrk``);
without wrk, a
Python client with one process per connection does the same job (and is reported as the tool).

Usage: ``python -m benchmarks.mock_throughput [--seconds 8] [--connections 1 4 16] [--python]``.
Writes ``benchmarks/results/mock_throughput.json``. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

RESULTS = Path(__file__).resolve().parent / "results" / "mock_throughput.json"
REPO = Path(__file__).resolve().parent.parent
ACTION = "http://schemas.microsoft.com/crm/2007/WebServices/Create"
BODY = (
    '<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><s:Header><CrmAuthenticationToken '
    'xmlns="http://schemas.microsoft.com/crm/2007/WebServices"><AuthenticationType '
    'xmlns="http://schemas.microsoft.com/crm/2007/CoreTypes">0</AuthenticationType><OrganizationName '
    'xmlns="http://schemas.microsoft.com/crm/2007/CoreTypes">Contoso</OrganizationName><CallerId '
    'xmlns="http://schemas.microsoft.com/crm/2007/CoreTypes">00000000-0000-0000-0000-000000000000</CallerId>'
    '</CrmAuthenticationToken></s:Header><s:Body><Create xmlns="http://schemas.microsoft.com/crm/2007/WebServices">'
    '<entity xmlns:q1="http://schemas.microsoft.com/crm/2006/WebServices" xsi:type="q1:DynamicEntity" '
    'Name="account"><q1:Properties><q1:Property xsi:type="q1:StringProperty" Name="name">'
    "<q1:Value>Contoso Ltd</q1:Value></q1:Property>"
    '<q1:Property xsi:type="q1:CrmNumberProperty" Name="numberofemployees">'
    "<q1:Value>12</q1:Value></q1:Property>"
    '<q1:Property xsi:type="q1:CrmMoneyProperty" Name="creditlimit"><q1:Value>1500.25'
    "</q1:Value></q1:Property></q1:Properties></entity></Create></s:Body></s:Envelope>"
)


def _lua() -> str:
    return (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/xml; charset=utf-8"\n'
        f'wrk.headers["SOAPAction"] = \'"{ACTION}"\'\nwrk.body = [[{BODY}]]\n'
    )


def run_wrk(url: str, connections: int, seconds: float) -> dict[str, object]:
    """Run wrk once and return its rate and latency."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(_lua())
        script = fh.name
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", script, url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        Path(script).unlink()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    dist = out.split("Latency Distribution", 1)[-1]
    p50 = re.search(r"\s50%\s+(\S+)", dist)
    p99 = re.search(r"\s99%\s+(\S+)", dist)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "connections": connections,
        "requests": total,
        "requests_per_s": rate,
        "latency_p50": p50.group(1) if p50 else None,
        "latency_p99": p99.group(1) if p99 else None,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def _py_worker(url: str, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body, n, bad = BODY.encode(), 0, 0
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        conn.request("POST", parts.path, body, headers)
        resp = conn.getresponse()
        resp.read()
        n += 1
        bad += resp.status != 200
    conn.close()
    out.put((n, bad))


def run_python(url: str, connections: int, seconds: float) -> dict[str, object]:
    """One process per keep-alive connection, each posting Creates back to back."""
    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [mp.Process(target=_py_worker, args=(url, seconds, queue)) for _ in range(connections)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    total = sum(n for n, _ in results)
    return {
        "connections": connections,
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "non_2xx": sum(b for _, b in results),
    }


def _stats(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", "/_mock/stats")
        return json.loads(conn.getresponse().read())  # type: ignore[no-any-return]
    finally:
        conn.close()


def _reset(url: str) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", "/_mock/reset")
        conn.getresponse().read()
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    """Start the mock, load it at each connection count, write the JSON results."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--connections", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--python", action="store_true", help="use the Python client even when wrk is installed")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    tool = "python" if args.python or not shutil.which("wrk") else "wrk"
    server = subprocess.Popen(
        [sys.executable, "-m", "crmload", "mock", "--port", "0", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    runs = []
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        for conns in args.connections:
            _reset(url)
            run = run_wrk(url, conns, args.seconds) if tool == "wrk" else run_python(url, conns, args.seconds)
            stats = _stats(url)
            run["server_connections_accepted"] = stats["connections_accepted"]  # includes the /_mock calls
            run["server_records"] = stats["records_by_entity"].get("account", 0)  # type: ignore[attr-defined]
            runs.append(run)
            print(
                f"{tool} c={conns}: {run['requests_per_s']} req/s, "
                f"accepted={run['server_connections_accepted']}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    doc = {
        "benchmark": "mock_throughput",
        "operation": "Create (DynamicEntity, 3 properties)",
        "keep_alive": True,
        "tool": tool,
        "seconds": args.seconds,
        "cpus": mp.cpu_count(),
        "python": platform.python_version(),
        "runs": runs,
        "best_requests_per_s": max(float(r["requests_per_s"]) for r in runs),  # type: ignore[arg-type]
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Contenders: the ways a user could load N account records, each run as ``python -m benchmarks.contenders``.

One process per run, so its CPU is its own. The process loads ``--count`` records with ``--workers`` threads,
stops at the first error (as a migration script that raises would), and prints one JSON object on stdout:
records ok, errors, the first failing call and its error text, connects attempted (counted by a
``socket.connect`` audit hook, the same way for every contender), wall and CPU time of the load loop,
and optional time series.

Contenders:
- ``naive``: ``requests.post`` per call with an f-string envelope, like a seed script.
- ``zeep``: zeep ``Client`` on the real CRM 4.0 WSDL over a pooled ``requests.Session``; DynamicEntity Create.
- ``crmload``: ``crmload.CrmClient.create`` from worker threads.
- ``raw``: the floor; envelopes rendered before the clock starts, posted through crmload's ``Transport``
  with no mapping, journal, limiter or response parsing beyond the status code.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

ORG = "Contoso"
ENTITY = "account"
WSDL = Path(__file__).resolve().parent.parent.parent / "shared/reference/crm-wsdl/crm40-CrmService-2007.wsdl"
SOAP_ACTION = '"http://schemas.microsoft.com/crm/2007/WebServices/Create"'
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION}

_connects = itertools.count()


def _audit(event: str, _args: tuple[Any, ...]) -> None:
    # Every contender's sockets go through socket.connect: counting there needs no help from the client.
    if event == "socket.connect":
        next(_connects)


def connects_attempted() -> int:
    """Return how many ``socket.connect`` calls this process has made so far."""
    return int(repr(_connects)[6:-1])


def record(tag: str, i: int) -> dict[str, str]:
    """Return record ``i`` of a run: the same four string attributes for every contender."""
    return {
        "name": f"Bench {tag} {i}",
        "accountnumber": f"B{i:08d}",
        "telephone1": "+1 555 0100",
        "address1_city": "Springfield",
    }


def naive_envelope(attrs: dict[str, str]) -> str:
    """Build a Create envelope the way a hand-written seed script would: one f-string template."""
    props = "".join(
        f'<q1:Property xsi:type="q1:StringProperty" Name="{k}"><q1:Value>{escape(v)}</q1:Value></q1:Property>'
        for k, v in attrs.items()
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<soap:Header><CrmAuthenticationToken xmlns="http://schemas.microsoft.com/crm/2007/WebServices">'
        '<AuthenticationType xmlns="http://schemas.microsoft.com/crm/2007/CoreTypes">0</AuthenticationType>'
        f'<OrganizationName xmlns="http://schemas.microsoft.com/crm/2007/CoreTypes">{ORG}</OrganizationName>'
        '<CallerId xmlns="http://schemas.microsoft.com/crm/2007/CoreTypes">'
        "00000000-0000-0000-0000-000000000000</CallerId></CrmAuthenticationToken></soap:Header>"
        '<soap:Body><Create xmlns="http://schemas.microsoft.com/crm/2007/WebServices">'
        f'<entity xsi:type="q1:DynamicEntity" Name="{ENTITY}" '
        'xmlns:q1="http://schemas.microsoft.com/crm/2006/WebServices">'
        f"<q1:Properties>{props}</q1:Properties></entity></Create></soap:Body></soap:Envelope>"
    )


Call = Callable[[int], None]


def make_naive(args: argparse.Namespace) -> tuple[Call, Callable[[], dict[str, Any]]]:
    """Return the naive call: a fresh ``requests.post`` (so a fresh connection) for every record."""
    import requests

    def call(i: int) -> None:
        body = naive_envelope(record(args.tag, i)).encode()
        resp = requests.post(args.url, data=body, headers=HEADERS, timeout=30)
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")

    return call, dict


def make_zeep(args: argparse.Namespace) -> tuple[Call, Callable[[], dict[str, Any]]]:
    """Return the zeep call: WSDL-driven Create of a DynamicEntity over one pooled Session."""
    import requests
    import zeep
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=args.workers)
    session.mount("http://", adapter)
    client = zeep.Client(
        str(WSDL), transport=zeep.Transport(session=session, timeout=30, operation_timeout=30)
    )
    service = client.create_service(
        "{http://schemas.microsoft.com/crm/2007/WebServices}CrmServiceSoap", args.url
    )
    ws06 = "{http://schemas.microsoft.com/crm/2006/WebServices}"
    dynamic = client.get_type(ws06 + "DynamicEntity")
    string_prop = client.get_type(ws06 + "StringProperty")
    token = client.get_element("{http://schemas.microsoft.com/crm/2007/WebServices}CrmAuthenticationToken")
    header = token(
        AuthenticationType=0, OrganizationName=ORG, CallerId="00000000-0000-0000-0000-000000000000"
    )

    def call(i: int) -> None:
        props = [string_prop(Name=k, Value=v) for k, v in record(args.tag, i).items()]
        entity = dynamic(Name=ENTITY, Properties={"Property": props})
        service.Create(entity=entity, _soapheaders=[header])

    return call, dict


def _budget(args: argparse.Namespace) -> Any:
    from crmload.budget import PortBudget

    if args.budget_ports:
        return PortBudget(ports=args.budget_ports, time_wait_s=args.budget_time_wait)
    return PortBudget.from_host()


def make_crmload(args: argparse.Namespace) -> tuple[Call, Callable[[], dict[str, Any]]]:
    """Return the crmload library call: ``CrmClient.create`` shared by all worker threads."""
    from crmload.client import CrmClient
    from crmload.throttle import RateLimit

    client = CrmClient(
        args.url, org=ORG, workers=args.workers, rate=RateLimit.parse(args.rate), budget=_budget(args)
    )
    if args.timestamps:
        _record_grants(client)

    def call(i: int) -> None:
        client.create(ENTITY, record(args.tag, i))

    def stats() -> dict[str, Any]:
        out = dict(client.stats())
        client.close()
        return out

    return call, stats


#: Monotonic times at which crmload's call limiter granted a call (limiter scenario only).
GRANTS: list[float] = []


def _record_grants(client: Any) -> None:
    # Instrumentation, not API: wrap the client's private limiter so the limiter scenario sees grant times
    # exactly, free of the response-time jitter that completion times carry.
    limiter = client._limiter
    acquire = limiter.acquire

    def timed_acquire() -> float:
        waited = acquire()
        GRANTS.append(time.monotonic())
        return float(waited)

    limiter.acquire = timed_acquire


def make_raw(args: argparse.Namespace) -> tuple[Call, Callable[[], dict[str, Any]]]:
    """Return the raw floor: pre-rendered crmload envelopes posted through crmload's Transport."""
    from crmload.soap.codec2007 import Codec2007
    from crmload.throttle import ConnectGuard
    from crmload.transport import Transport

    codec = Codec2007(ORG)
    bodies = [codec.build_create(ENTITY, record(args.tag, i)) for i in range(args.count)]
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": codec.soap_action("Create")}
    transport = Transport(args.url, workers=args.workers, guard=ConnectGuard(_budget(args)))

    def call(i: int) -> None:
        reply = transport.post(bodies[i], headers)
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}")

    def stats() -> dict[str, Any]:
        out = dict(transport.stats())
        transport.close()
        return out

    return call, stats


FACTORIES = {"naive": make_naive, "zeep": make_zeep, "crmload": make_crmload, "raw": make_raw}


class _Run:
    """Shared state of one load loop: dispenses record numbers, counts, keeps the first failure."""

    def __init__(self, args: argparse.Namespace, call: Call) -> None:
        self.args = args
        self.call = call
        self.next_index = itertools.count()
        self.done = itertools.count(1)
        self.ok = 0
        self.errors = 0
        self.first_error: tuple[int, str] | None = None
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.stamps: list[list[float]] = []
        self.series: list[tuple[int, int, float]] = []

    def worker(self) -> None:
        stamps: list[float] = []
        with self.lock:
            self.stamps.append(stamps)
        every = self.args.series_every
        while not self.stop.is_set():
            i = next(self.next_index)
            if i >= self.args.count:
                return
            try:
                self.call(i)
            except Exception as exc:  # any failure ends the run, as in a real script
                with self.lock:
                    self.errors += 1
                    if self.first_error is None:
                        self.first_error = (i + 1, f"{type(exc).__name__}: {exc}"[:500])
                self.stop.set()
                return
            now = time.monotonic()
            n = next(self.done)
            if self.args.timestamps:
                stamps.append(now - self.t0)
            if every and n % every == 0:
                self.series.append((n, connects_attempted(), round(now - self.t0, 4)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load ``args.count`` records with ``args.contender`` and return the result document."""
    call, final_stats = FACTORIES[args.contender](args)
    connects0 = connects_attempted()
    state = _Run(args, call)
    cpu0 = time.process_time()
    state.t0 = t0 = time.monotonic()
    if args.workers == 1:
        # In the main thread, so cProfile (which follows one thread) sees the whole loop.
        state.worker()
    else:
        threads = [threading.Thread(target=state.worker, daemon=True) for _ in range(args.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    ok = int(repr(state.done)[6:-1]) - 1
    stamps = sorted(s for lst in state.stamps for s in lst)
    return {
        "contender": args.contender,
        "workers": args.workers,
        "count": args.count,
        "ok": ok,
        "errors": state.errors,
        "first_error_call": state.first_error[0] if state.first_error else None,
        "first_error": state.first_error[1] if state.first_error else None,
        "connects_attempted": connects_attempted() - connects0,
        "wall_s": wall,
        "cpu_s": cpu,
        "records_per_s": ok / wall if wall > 0 else 0.0,
        "cpu_us_per_record": cpu / ok * 1e6 if ok else None,
        "client_stats": _jsonable(final_stats()),
        "series": state.series,
        "timestamps": stamps if args.timestamps else None,
        "grant_timestamps": sorted(g - t0 for g in GRANTS) if args.timestamps else None,
    }


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the contender process's arguments."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.contenders")
    p.add_argument("contender", choices=sorted(FACTORIES))
    p.add_argument("--url", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rate", default="unlimited")
    p.add_argument("--budget-ports", type=int, default=0)
    p.add_argument("--budget-time-wait", type=float, default=60.0)
    p.add_argument("--tag", default="r")
    p.add_argument("--timestamps", action="store_true")
    p.add_argument("--series-every", type=int, default=0)
    p.add_argument("--profile", default="", help="write cProfile top entries of the load loop to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one contender and print its JSON result on stdout."""
    args = parse_args(argv)
    sys.addaudithook(_audit)
    if args.profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(run, args)
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.sort_stats("tottime").print_stats(25)
        # Where crmload's own code spends time, beside the libraries it calls.
        stats.sort_stats("cumulative").print_stats("crmload", 25)
        Path(args.profile).write_text(buf.getvalue())
    else:
        result = run(args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""NTLM cost: a new connection + handshake per call (the 2009 pattern) against crmload's pinned, authenticated
connections; and requests-ntlm on pinned per-worker sessions against crmload's own pyspnego handshake.

The mock runs in its own process with NTLM on (``python -m crmload mock --user ...``); clients run here in
threads. Counts come from the mock (handshakes, 401s, requests) and the client (sockets opened). "Body
uploads" counts the request legs that carried the full body: for requests-ntlm every leg of a handshake re-
sends it; for crmload the challenge leg is body-less. Results go to ``benchmarks/results/auth.json``;
nothing asserts a time.

Run: ``python -m benchmarks.auth_bench [--quick]`` (about a minute; --quick: a few seconds).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from requests_ntlm import HttpNtlmAuth

from benchmarks.harness import RESULTS, Mock, write_result
from crmload.auth import Ntlm
from crmload.budget import PortBudget
from crmload.client import CrmClient
from crmload.soap.codec2007 import Codec2007

USER, PASSWORD = "CONTOSO\\alice", "bench-secret"
WORKERS = 8
BUDGET = PortBudget(ports=60000, time_wait_s=1.0)  # the guard must not be what is measured
CODEC = Codec2007("Contoso")
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": CODEC.soap_action("Create")}


def _body(i: int) -> bytes:
    return CODEC.build_create("account", {"name": f"bench {i}"})


def per_call_new_connection(url: str, n: int) -> dict[str, Any]:
    """Each call: a fresh Session (so a fresh socket) with requests-ntlm, closed afterwards."""

    def one(i: int) -> int:
        with requests.Session() as s:
            s.auth = HttpNtlmAuth(USER, PASSWORD)
            return s.post(url, data=_body(i), headers=HEADERS, timeout=30).status_code

    return _pool_run(one, n, sockets=lambda: n)


def requests_ntlm_pinned(url: str, n: int) -> dict[str, Any]:
    """requests-ntlm on one Session with a one-connection pool per worker thread."""
    local = threading.local()
    sessions: list[requests.Session] = []

    def one(i: int) -> int:
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
            s.mount(
                "http://", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, pool_block=True)
            )
            s.auth = HttpNtlmAuth(USER, PASSWORD)
            sessions.append(s)
        return s.post(url, data=_body(i), headers=HEADERS, timeout=30).status_code

    try:
        return _pool_run(one, n, sockets=lambda: None)
    finally:
        for s in sessions:
            s.close()


def requests_ntlm_shared(url: str, n: int) -> dict[str, Any]:
    """requests-ntlm with one Session (pool of 8) shared by the 8 threads: the mid-handshake socket swap."""
    with requests.Session() as s:
        s.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=WORKERS, pool_block=True))
        s.auth = HttpNtlmAuth(USER, PASSWORD)
        return _pool_run(
            lambda i: s.post(url, data=_body(i), headers=HEADERS, timeout=30).status_code,
            n,
            sockets=lambda: None,
        )


def crmload_pinned(url: str, n: int) -> dict[str, Any]:
    """crmload: CrmClient + Ntlm on pinned authenticated connections, full stack (limiter, retry, codec)."""
    auth = Ntlm(USER, PASSWORD)
    with CrmClient(url, org="Contoso", workers=WORKERS, rate="unlimited", budget=BUDGET, auth=auth) as c:

        def one(i: int) -> int:
            c.create("account", {"name": f"bench {i}"})
            return 200

        out = _pool_run(one, n, sockets=lambda: c.stats()["sockets_opened"])
    out["client_handshakes"] = auth.stats()["handshakes"]
    return out


def _pool_run(one: Callable[[int], int], n: int, *, sockets: Callable[[], int | None]) -> dict[str, Any]:
    def safe(i: int) -> int:
        try:
            return one(i)
        except Exception:  # a benchmark counts failures instead of stopping
            return -1

    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        codes = list(pool.map(safe, range(n)))
    elapsed = time.perf_counter() - start
    ok = sum(1 for c in codes if c == 200)
    return {"calls": n, "ok": ok, "failed": n - ok, "elapsed_s": elapsed, "calls_per_s": ok / elapsed,
            "client_sockets": sockets()}  # fmt: skip


def measure(mock: Mock, name: str, fn: Callable[[str, int], dict[str, Any]], n: int) -> dict[str, Any]:
    mock.reset()
    out = fn(mock.url, n)
    stats = mock.stats()
    auth = stats.get("auth", {})
    legs_with_body = auth.get("anonymous", 0) + auth.get("authenticated_requests", 0)
    if name != "crmload_pinned":
        legs_with_body += auth.get("challenges", 0)  # requests-ntlm sends the body on the type-1 leg too
    out.update(
        connections_accepted=stats["connections_accepted"] - 1,  # minus the stats GET's own connection
        handshakes=auth.get("handshakes"),
        handshake_failures=auth.get("handshake_failures"),
        challenges=auth.get("challenges"),
        unauthenticated_401=auth.get("anonymous"),
        body_uploads=legs_with_body,
        records=stats["records_by_entity"].get("account", 0),
    )
    return out


def run(quick: bool) -> dict[str, Any]:
    n_pinned, n_per_call, reps = (400, 150, 1) if quick else (3000, 600, 3)
    scenarios: list[tuple[str, Callable[[str, int], dict[str, Any]], int]] = [
        ("per_call_new_connection_ntlm", per_call_new_connection, n_per_call),
        ("crmload_pinned", crmload_pinned, n_pinned),
        ("requests_ntlm_pinned", requests_ntlm_pinned, n_pinned),
        ("requests_ntlm_shared_session", requests_ntlm_shared, n_pinned),
    ]
    doc: dict[str, Any] = {"workers": WORKERS, "runs": {}}
    for label, mock_args in (("keepalive", []), ("close_every_100", ["--close-every", "100"])):
        mock = Mock(["--user", f"{USER}:{PASSWORD}", *mock_args])
        try:
            results: dict[str, list[dict[str, Any]]] = {}
            for _ in range(reps):  # interleaved, so drift hits every scenario alike
                for name, fn, n in scenarios:
                    if label != "keepalive" and name == "per_call_new_connection_ntlm":
                        continue
                    results.setdefault(name, []).append(measure(mock, name, fn, n))
        finally:
            mock.stop()
        doc["runs"][label] = {name: _summarise(rs) for name, rs in results.items()}
    keep = doc["runs"]["keepalive"]
    doc["ratio_crmload_pinned_vs_per_call_new_connection"] = (
        keep["crmload_pinned"]["calls_per_s"] / keep["per_call_new_connection_ntlm"]["calls_per_s"]
    )
    return doc


def _summarise(rs: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(rs[-1])
    out["calls_per_s"] = statistics.median(r["calls_per_s"] for r in rs)
    out["calls_per_s_all"] = [round(r["calls_per_s"], 1) for r in rs]
    out.pop("elapsed_s", None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    doc = run(args.quick)
    path = write_result(RESULTS, "auth", doc, quick=args.quick, started=started)
    for label, runs in doc["runs"].items():
        for name, r in runs.items():
            print(
                f"{label:16} {name:30} {r['calls_per_s']:8.1f} calls/s ok={r['ok']:5} failed={r['failed']:4} "
                f"conns={r['connections_accepted']:4} handshakes={r['handshakes']} "
                f"fail={r['handshake_failures']} body_uploads={r['body_uploads']}"
            )
    print(f"ratio pinned/per-call: {doc['ratio_crmload_pinned_vs_per_call_new_connection']:.1f}x -> {path}")


if __name__ == "__main__":
    main()

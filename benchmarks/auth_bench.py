"""NTLM cost: a new connection + handshake per call (the 2009 pattern) against crmload's pinned, authenticated
connections; and requests-ntlm on pinned per-worker sessions against crmload's own pyspnego handshake.

The mock runs in its own process with NTLM on (``python -m crmload mock --user ...``); clients run here in
threads. Counts come from the mock (handshakes, 401s, requests) and the client (sockets opened). "Body
uploads" counts the request legs that carried the full body: for requests-ntlm every leg of a handshake re-
sends it; for crmload the challenge leg is body-less. Results go to ``benchmarks/results/auth.json``;
nothing asserts a time.

Bearer overhead (``bearer_overhead`` in the JSON): client CPU per call (``time.process_time`` of this process;
the mock runs in its own) for a static ``Bearer`` token against ``ClientCredentials`` (MSAL, cached token),
interleaved, over the same HTTPS mock (a ``trustme`` CA, verified), one worker, creates on the 2011 endpoint;
and the auth object's own call (``auth(prepared_request)``) alone, in ns. Token requests are counted at the
mock's authority.

Run: ``python -m benchmarks.auth_bench [--quick] [--bearer-only]`` (about a minute; --quick: a few seconds;
--bearer-only: just the bearer overhead, written to ``auth_bearer.json``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from requests_ntlm import HttpNtlmAuth

from benchmarks.harness import RESULTS, Mock, write_result
from crmload.auth import Bearer, ClientCredentials, Ntlm
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


BEARER_TOKEN, CLIENT_ID, CLIENT_SECRET = "bench-static-token", "bench-app", "bench-client-secret"


def bearer_overhead(quick: bool) -> dict[str, Any]:
    """Client CPU per call with a static token and with ClientCredentials, interleaved on one HTTPS mock."""
    import trustme  # a test dependency: the mock's certificate chains to a throwaway CA

    n, reps = (300, 1) if quick else (2000, 3)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp:
        bundle, chain, key = f"{tmp}/ca.pem", f"{tmp}/chain.pem", f"{tmp}/key.pem"
        ca.cert_pem.write_to_path(bundle)
        cert.private_key_pem.write_to_path(key)
        with open(chain, "wb") as f:
            f.write(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        mock = Mock(["--tls-cert", chain, "--tls-key", key, "--client", f"{CLIENT_ID}={CLIENT_SECRET}",
                     "--token", f"bench={BEARER_TOKEN}", "--limits", "off"])  # fmt: skip
        try:
            makers: dict[str, Callable[[], Any]] = {
                "static_bearer": lambda: Bearer(BEARER_TOKEN),
                "client_credentials": lambda: ClientCredentials(
                    "contoso", CLIENT_ID, CLIENT_SECRET, authority=mock.base, verify=bundle
                ),
            }
            runs: dict[str, list[dict[str, Any]]] = {}
            last: dict[str, Any] = {}
            for _ in range(reps):  # interleaved, so drift hits both alike
                for name, make in makers.items():
                    last[name] = make()
                    runs.setdefault(name, []).append(_cpu_per_call(mock.base, last[name], bundle, n))
            token_requests = requests.get(f"{mock.base}/_mock/stats", verify=bundle, timeout=30).json()
        finally:
            mock.stop()
    doc: dict[str, Any] = {"calls_per_run": n, "runs": reps}
    for name, rs in runs.items():
        doc[name] = {
            "cpu_us_per_call": statistics.median(r["cpu_us_per_call"] for r in rs),
            "cpu_us_per_call_all": [round(r["cpu_us_per_call"], 1) for r in rs],
            "calls_per_s": statistics.median(r["calls_per_s"] for r in rs),
            "auth_call_ns": _auth_call_ns(last[name], mock.base),
        }
    doc["overhead_cpu_us_per_call"] = (
        doc["client_credentials"]["cpu_us_per_call"] - doc["static_bearer"]["cpu_us_per_call"]
    )
    doc["token_requests_at_authority"] = token_requests["token"]["token_requests"]
    doc["client_credentials_instances"] = reps  # one fetch each is the expected count
    return doc


def _cpu_per_call(base: str, auth: Any, bundle: str, n: int) -> dict[str, float]:
    url = base + "/XRMServices/2011/Organization.svc/web"
    with CrmClient(url, workers=1, rate="unlimited", budget=BUDGET, auth=auth, verify=bundle) as c:
        for i in range(20):  # warm: the TLS connection, and ClientCredentials' one token fetch
            c.create("account", {"name": f"warm {i}"})
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(n):
            c.create("account", {"name": f"bench {i}"})
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_us_per_call": cpu / n * 1e6, "calls_per_s": n / wall}


def _auth_call_ns(auth: Any, base: str, n: int = 100_000) -> float:
    """The auth object's own work per request: header set and hook registered (the token already cached)."""
    from requests.hooks import default_hooks

    prepared = requests.Request("POST", base + "/XRMServices/2011/Organization.svc/web").prepare()
    cpu0 = time.process_time()
    for _ in range(n):
        prepared.hooks = default_hooks()
        auth(prepared)
    return (time.process_time() - cpu0) / n * 1e9


def _summarise(rs: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(rs[-1])
    out["calls_per_s"] = statistics.median(r["calls_per_s"] for r in rs)
    out["calls_per_s_all"] = [round(r["calls_per_s"], 1) for r in rs]
    out.pop("elapsed_s", None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--bearer-only", action="store_true", help="only the bearer overhead")
    args = parser.parse_args()
    started = time.monotonic()
    if args.bearer_only:
        bearer = bearer_overhead(args.quick)
        path = write_result(
            RESULTS, "auth_bearer", {"bearer_overhead": bearer}, quick=args.quick, started=started
        )
        _print_bearer(bearer, path)
        return
    doc = run(args.quick)
    doc["bearer_overhead"] = bearer_overhead(args.quick)
    path = write_result(RESULTS, "auth", doc, quick=args.quick, started=started)
    for label, runs in doc["runs"].items():
        for name, r in runs.items():
            print(
                f"{label:16} {name:30} {r['calls_per_s']:8.1f} calls/s ok={r['ok']:5} failed={r['failed']:4} "
                f"conns={r['connections_accepted']:4} handshakes={r['handshakes']} "
                f"fail={r['handshake_failures']} body_uploads={r['body_uploads']}"
            )
    print(f"ratio pinned/per-call: {doc['ratio_crmload_pinned_vs_per_call_new_connection']:.1f}x -> {path}")
    _print_bearer(doc["bearer_overhead"], path)


def _print_bearer(doc: dict[str, Any], path: Any) -> None:
    for name in ("static_bearer", "client_credentials"):
        r = doc[name]
        print(
            f"{name:20} {r['cpu_us_per_call']:8.1f} us CPU/call {r['calls_per_s']:8.1f} calls/s "
            f"auth call {r['auth_call_ns']:7.0f} ns"
        )
    print(
        f"ClientCredentials overhead {doc['overhead_cpu_us_per_call']:+.1f} us CPU/call; "
        f"token requests {doc['token_requests_at_authority']} for {doc['client_credentials_instances']} runs "
        f"-> {path}"
    )


if __name__ == "__main__":
    main()

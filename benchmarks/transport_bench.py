"""Client CPU per POST: plain requests.post, requests.Session, and crmload's Transport with and without the
once-resolved environment (proxies, CA bundle, netrc). Writes benchmarks/results/transport.json.

The server is a tiny HTTP/1.1 keep-alive server in a child process, so ``time.process_time`` in this process
counts only the client's CPU. Rounds are interleaved and the median is reported. Not a test: nothing asserts.

    python benchmarks/transport_bench.py [--calls 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from crmload.transport import Transport  # noqa: E402

SERVER = r"""
import socket, sys, threading
REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: 64\r\n\r\n"
         + b"<r>" + b"x" * 57 + b"</r>")
def serve(conn):
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(buf) < length:
                buf += conn.recv(65536)
            buf = buf[length:]
            conn.sendall(REPLY)
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

BODY = b"<soap:Envelope>" + b"y" * 900 + b"</soap:Envelope>"
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "http://x/Create"}


class _NoGuard:
    def acquire(self) -> float:
        return 0.0


def _cpu_us_per_call(call: Callable[[], object], n: int) -> float:
    call()  # warm: connect, caches
    start = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - start) / n * 1e6


def _contenders(url: str) -> dict[str, tuple[Callable[[], object], Callable[[], None]]]:
    session = requests.Session()
    once = Transport(url, guard=_NoGuard(), direct=False)
    per_call = Transport(url, guard=_NoGuard(), trust_env_per_call=True, direct=False)
    direct = Transport(url, guard=_NoGuard())

    def plain() -> object:
        return requests.post(url, data=BODY, headers=HEADERS, timeout=10).content

    def sess() -> object:
        return session.post(url, data=BODY, headers=HEADERS, timeout=10).content

    return {
        "requests.post (new connection per call)": (plain, lambda: None),
        "requests.Session (env read per call)": (sess, session.close),
        "Transport, env read per call": (lambda: per_call.post(BODY, HEADERS), per_call.close),
        "Transport, env resolved once": (lambda: once.post(BODY, HEADERS), once.close),
        "Transport, direct to the adapter's pool (default)": (
            lambda: direct.post(BODY, HEADERS),
            direct.close,
        ),
    }


def _measure(url: str, calls: int, rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {}
    contenders = _contenders(url)
    for _ in range(rounds):
        for name, (call, _close) in contenders.items():
            # The per-call connection contender leaves TIME_WAIT sockets behind: keep it to a few hundred.
            n = min(calls, 300) if name.startswith("requests.post") else calls
            samples.setdefault(name, []).append(_cpu_us_per_call(call, n))
    for _call, close in contenders.values():
        close()
    return {name: round(statistics.median(v), 1) for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "transport.json"))
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/MSCRMServices/2007/CrmService.asmx"
        results = {"no proxy variables": _measure(url, args.calls, args.rounds)}
        # A typical corporate environment: a proxy for everything, the CRM host bypassed via NO_PROXY.
        os.environ.update(
            HTTP_PROXY="http://proxy.invalid:3128", NO_PROXY="localhost,127.0.0.1,.corp.example"
        )
        results["HTTP_PROXY + NO_PROXY set"] = _measure(url, args.calls, args.rounds)
    finally:
        server.kill()
        server.wait()
        server.stdout.close()  # type: ignore[union-attr]
    for numbers in results.values():
        once, per_call = numbers["Transport, env resolved once"], numbers["Transport, env read per call"]
        numbers["saving_pct (once vs per call)"] = round(100 * (per_call - once) / per_call, 1)
        direct = numbers["Transport, direct to the adapter's pool (default)"]
        numbers["saving_pct (direct vs once)"] = round(100 * (once - direct) / once, 1)
    report = {
        "what": "client CPU microseconds per POST (time.process_time), median of interleaved rounds",
        "calls_per_round": args.calls,
        "rounds": args.rounds,
        "python": platform.python_version(),
        "requests": requests.__version__,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Would h11 keep the mock within 10 % of its throughput? The mock with its HTTP layer swapped for h11, A/B.

Issue 14 asked to prefer a well-kept HTTP/1.1 parser (h11) over the hand-written one if it costs at most 10 %
of the mock's measured throughput. This probe subclasses ``MockCrm`` so that each connection reads requests
and writes responses through one ``h11.Connection`` (the way h11 is meant to be used), runs ``wrk`` with the
Create envelope of ``benchmarks/mock_throughput.py`` against it and against the shipped mock, interleaved, and
writes both rates. Needs ``pip install h11`` and ``wrk``; asserts nothing.

Usage: ``python -m benchmarks.mock_h11_probe [--seconds 5] [--rounds 3] [--connections 1 4]``.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.mock_throughput import REPO, run_wrk
from crmload.mock import MockCrm
from crmload.mock.http import BadRequest, Headers, Request
from crmload.mock.server import ConnState

RESULTS = Path(__file__).resolve().parent / "results" / "mock_h11_probe.json"


class H11MockCrm(MockCrm):
    """``MockCrm`` whose HTTP reading and writing go through h11 (benchmark only)."""

    def _serve(self, sock: socket.socket, state: ConnState) -> None:
        import h11

        state.auth = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        super()._serve(sock, state)

    def _one_request(self, sock: socket.socket, state: ConnState, buf: bytearray) -> bool:
        import h11

        conn: Any = state.auth
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        req: Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = sock.recv(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return False
                continue
            if isinstance(event, h11.Request):
                headers = Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
                req = Request(
                    method=event.method.decode(),
                    target=event.target.decode("latin-1"),
                    version="HTTP/" + event.http_version.decode(),
                    headers=headers,
                )
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                return False
            else:  # pragma: no cover - the probe only sees well-formed traffic
                raise BadRequest(400, f"unexpected {event!r}")
        assert req is not None
        req.body = bytes(body)
        req.keep_alive = conn.their_state is not h11.MUST_CLOSE
        state.requests += 1
        return self._soap(sock, state, req)

    def _send(  # type: ignore[override]
        self,
        sock: socket.socket,
        state: ConnState,
        req: Request,
        *,
        status: int,
        body: bytes,
        ctype: str,
        extra: Iterable[tuple[str, str]] | None = None,
        close: bool = False,
    ) -> bool:
        import h11

        conn: Any = state.auth
        headers = [
            ("Cache-Control", "private"),
            ("Content-Type", ctype),
            ("Server", "Microsoft-IIS/6.0"),
            ("Content-Length", str(len(body))),
            *(extra or ()),
        ]
        if close or not req.keep_alive:
            headers.append(("Connection", "close"))
        out = conn.send(h11.Response(status_code=status, headers=headers))
        out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        sock.sendall(out)
        state.responses += 1
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE and not close


def _serve(kind: str) -> None:
    server = (H11MockCrm if kind == "h11" else MockCrm)(org="Contoso", port=0, seed=1).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.stop()


def _measure(kind: str, conns: int, seconds: float) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.mock_h11_probe", "--serve", kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        run = run_wrk(url, conns, seconds)
        if run.get("non_2xx"):
            raise SystemExit(f"{kind}: {run['non_2xx']} non-2xx answers")
        return float(run["requests_per_s"])  # type: ignore[arg-type]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    """Run both servers in turn, ``rounds`` times per connection count; write the best rate of each."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", choices=["h11", "shipped"])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.serve:
        _serve(args.serve)
        return 0
    rates: dict[str, dict[int, list[float]]] = {"shipped": {}, "h11": {}}
    for _ in range(args.rounds):
        for conns in args.connections:
            for kind in ("shipped", "h11"):
                rate = _measure(kind, conns, args.seconds)
                rates[kind].setdefault(conns, []).append(rate)
                print(f"{kind} c={conns}: {rate:.0f} req/s", flush=True)
    best = {k: {c: max(v) for c, v in per.items()} for k, per in rates.items()}
    doc = {
        "benchmark": "mock_h11_probe",
        "operation": "Create (DynamicEntity, 3 properties), wrk, keep-alive",
        "rates": rates,
        "best": best,
        "h11_over_shipped": {c: round(best["h11"][c] / best["shipped"][c], 3) for c in args.connections},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc["h11_over_shipped"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does asking for gzip help crmload's RetrieveMultiple pages? Bytes on the wire and client time per page.

The mock runs as its own process (``python -m crmload mock``) and gzips answers of 2,700 bytes or more when
the client sends ``Accept-Encoding: gzip`` (as IIS dynamic compression does). The same ``CrmClient`` pages
through the same records twice: once as shipped (requests' default ``Accept-Encoding: gzip, deflate``) and
once with ``Accept-Encoding: identity``. Loopback has no bandwidth limit, so the time measured is the CPU
price of compressing and inflating; the bytes saved are what a real link to CRM would not carry.
The break-even bandwidth is the link speed below which gzip wins: ``bytes saved * 8 / extra seconds``.

Usage: ``python -m benchmarks.gzip_pages [--records 5000] [--page-size 5000] [--repeat 5]``. Writes
``benchmarks/results/gzip_pages.json``. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from crmload import CrmClient, Money, RateLimit

RESULTS = Path(__file__).resolve().parent / "results" / "gzip_pages.json"
REPO = Path(__file__).resolve().parent.parent


def _seed(client: CrmClient, n: int) -> None:
    for i in range(n):
        client.create(
            "account",
            {
                "name": f"Account {i:06d} Ltd",
                "accountnumber": f"A-{i:06d}",
                "address1_city": "Kraków",
                "telephone1": f"+48 12 {i:07d}",
                "creditlimit": Money(f"{i}.50"),
                "numberofemployees": i % 500,
                "description": "A customer migrated from the legacy system, with notes.",
            },
        )


def _pass(client: CrmClient, page_size: int) -> tuple[float, int]:
    """Page through every account once; return (seconds, records)."""
    start = time.perf_counter()
    n = sum(1 for _ in client.retrieve_multiple("account", page_size=page_size))
    return time.perf_counter() - start, n


def _mode(url: str, accept: str, page_size: int, repeat: int) -> dict[str, object]:
    with CrmClient(url, org="Contoso", rate=RateLimit.unlimited()) as client:
        transport = client._transport
        transport._default_headers["Accept-Encoding"] = accept
        for session in [transport._shared, *transport._sessions]:
            if session is not None:
                session.headers["Accept-Encoding"] = accept
        times, records = [], 0
        for _ in range(repeat):
            seconds, records = _pass(client, page_size)
            times.append(seconds)
    return {
        "accept_encoding": accept,
        "records": records,
        "best_s": round(min(times), 4),
        "wire_bytes_first_page": _page_bytes(url, accept, page_size),
    }


def _page_bytes(url: str, accept: str, page_size: int) -> int:
    """Bytes of the first page as sent on the wire (the body the mock wrote, compressed or not)."""
    import http.client
    from urllib.parse import urlsplit

    from crmload.soap.codec2007 import Codec2007

    codec = Codec2007(org="Contoso")
    body = codec.build_retrieve_multiple("account", None, None, page_size, 1, None, dynamic=True)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    try:
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": codec.soap_action("Execute"),
            "Accept-Encoding": accept,
        }
        conn.request("POST", parts.path, body, headers)
        return len(conn.getresponse().read())
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    """Start the mock, seed it, measure both modes, write the JSON results."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--page-size", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    server = subprocess.Popen(
        [sys.executable, "-m", "crmload", "mock", "--port", "0", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with CrmClient(url, org="Contoso", rate=RateLimit.unlimited()) as client:
            _seed(client, args.records)
        runs = []
        for _ in range(2):  # interleave, so drift on a shared machine hits both modes alike
            for accept in ("identity", "gzip, deflate"):
                runs.append(_mode(url, accept, args.page_size, args.repeat))
    finally:
        server.terminate()
        server.wait(timeout=30)
    plain = min((r for r in runs if r["accept_encoding"] == "identity"), key=lambda r: r["best_s"])  # type: ignore[arg-type, return-value]
    packed = min((r for r in runs if r["accept_encoding"] != "identity"), key=lambda r: r["best_s"])  # type: ignore[arg-type, return-value]
    saved = int(plain["wire_bytes_first_page"]) - int(packed["wire_bytes_first_page"])  # type: ignore[call-overload]
    extra = float(packed["best_s"]) - float(plain["best_s"])  # type: ignore[arg-type]
    doc = {
        "benchmark": "gzip_pages",
        "records": args.records,
        "page_size": args.page_size,
        "python": platform.python_version(),
        "runs": runs,
        "identity": plain,
        "gzip": packed,
        "ratio": round(int(plain["wire_bytes_first_page"]) / max(1, int(packed["wire_bytes_first_page"])), 2),  # type: ignore[call-overload]
        "extra_s_on_loopback": round(extra, 4),
        "break_even_mbit_s": round(saved * 8 / extra / 1e6, 1) if extra > 0 else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(
        json.dumps(
            {k: doc[k] for k in ("identity", "gzip", "ratio", "extra_s_on_loopback", "break_even_mbit_s")}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

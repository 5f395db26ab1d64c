"""Where crmload's CPU per call goes as worker threads are added: the raw floor, the floor plus only the codec
(build + parse), and the whole client. Writes benchmarks/results/threads.json.

Same process and transport for all three, the mock in its own process; rounds interleaved, medians reported.
It answers one question the throughput scenario raises: is the gap to the raw floor at 4-8 workers crmload's
plumbing (limiter, retry wrapper, stats) or the codec's Python work competing for the GIL on 2 cores?

    python -m benchmarks.threads_bench [--calls 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from crmload import CrmClient  # noqa: E402

ATTRS = {"name": "Contoso Ltd", "telephone1": "555-0100", "numberofemployees": 42}


def _threaded(fn: Callable[[int], None], calls: int, workers: int) -> tuple[float, float]:
    """Run ``fn(n)`` in ``workers`` threads; return (CPU µs per call, calls per second)."""
    per = calls // workers
    threads = [threading.Thread(target=fn, args=(per,)) for _ in range(workers)]
    cpu, wall = time.process_time(), time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = per * workers
    return (time.process_time() - cpu) / done * 1e6, done / (time.monotonic() - wall)


def _measure(url: str, workers: int, calls: int, rounds: int) -> dict[str, dict[str, float]]:
    client = CrmClient(url, org="Contoso", rate="unlimited", workers=workers)
    codec, transport = client._codec, client._transport
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": codec.soap_action("Create")}
    body = codec.build_create("account", ATTRS)

    def raw(n: int) -> None:
        for _ in range(n):
            transport.post(body, headers)

    def codec_only(n: int) -> None:
        for _ in range(n):
            codec.parse_create(transport.post(codec.build_create("account", ATTRS), headers).body)

    def whole(n: int) -> None:
        for _ in range(n):
            client.create("account", ATTRS)

    contenders = {"raw floor": raw, "floor + codec": codec_only, "CrmClient.create": whole}
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in contenders}
    try:
        for _ in range(rounds):
            for name, fn in contenders.items():
                samples[name].append(_threaded(fn, calls, workers))
    finally:
        client.close()
    return {
        name: {
            "cpu_us_per_call": round(statistics.median(s[0] for s in v), 1),
            "calls_per_s": round(statistics.median(s[1] for s in v)),
        }
        for name, v in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "threads.json"))
    args = parser.parse_args()
    mock = subprocess.Popen(
        [sys.executable, "-m", "crmload", "mock", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert mock.stdout is not None
        url = mock.stdout.readline().strip()
        results = {f"{w} worker(s)": _measure(url, w, args.calls, args.rounds) for w in (1, 4, 8)}
    finally:
        mock.terminate()
        mock.wait()
        if mock.stdout is not None:
            mock.stdout.close()
    doc = {
        "what": "client CPU per Create (time.process_time over all threads) and calls/s, median of rounds",
        "calls_per_round": args.calls,
        "rounds": args.rounds,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()

"""The loader end to end at batch sizes 1, 100, 1,000 and auto: records/s and client CPU per record.

(``loader_batches.py`` compares the Organization service at 1,000 with CRM 4.0 row by row; this one compares
batch sizes on the Organization service, with a journal file, as ``crmload import`` runs.)

The mock runs as its own process (``python -m crmload mock --port 0 --token ...``), so this process's CPU
(``time.process_time``: every thread of it) is the client's alone: reading the CSV, mapping, the journal
(a real SQLite file), the codec and the transport. Each run is ``Loader(CrmClient(...)).run(CsvSource(...))``
of a fresh ``scripts/gen_csv.py`` file into the Organization service (unkeyed creates, 4 workers, no rate
limit), with the store reset between runs. Sizes are interleaved (1, 100, 1000, auto, 1, 100, ...) so a
machine that gets busier mid-run slows every size alike; the median of the rounds is reported.

Usage: ``python -m benchmarks.loader_batch_sizes [--rows 20000] [--rows-single 3000] [--rounds 3]``.
Writes ``benchmarks/results/loader_batch_sizes.json``. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "loader_batch_sizes.json"
REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"  # noqa: S105 - the mock's token for this run only
SIZES: tuple[int | str, ...] = (1, 100, 1000, "auto")


def _one(url: str, src: Path, size: int | str, work: Path) -> dict[str, Any]:
    from crmload import CrmClient
    from crmload.auth import Bearer
    from crmload.load import CsvSource, Loader

    journal = work / f"j-{size}-{time.monotonic_ns()}.sqlite"
    with CrmClient(url, auth=Bearer(TOKEN), rate="unlimited", workers=4) as client:
        client.who_am_i()  # the connection and the imports are warm before the clock starts
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with CsvSource(src) as source:
            loader = Loader(client, "account", journal=journal, workers=4, batch_size=size)
            summary = loader.run(source)
            loader.close()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stats = client.stats()
    return {
        "batch_size": str(size),
        "rows": summary.read,
        "done": summary.done,
        "wall_s": round(wall, 3),
        "records_per_s": round(summary.done / wall, 1),
        "client_cpu_us_per_record": round(cpu * 1e6 / max(summary.done, 1), 1),
        "requests": stats["requests"],
        "batches": summary.batches,
        "mean_batch_size": summary.mean_batch_size,
    }


def main() -> None:
    """Start the mock, run every size ``--rounds`` times interleaved, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000, help="rows per run at batch sizes above 1")
    ap.add_argument("--rows-single", type=int, default=3_000, help="rows per run at batch size 1")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "crmload", "mock", "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    base = server.stdout.readline().strip().split("/MSCRMServices", 1)[0]
    url = base + "/XRMServices/2011/Organization.svc/web"
    runs: dict[str, list[dict[str, Any]]] = {str(s): [] for s in SIZES}
    try:
        with tempfile.TemporaryDirectory(prefix="crmbench-") as tmp:
            work = Path(tmp)
            files = {}
            for n in {args.rows, args.rows_single}:
                files[n] = work / f"accounts-{n}.csv"
                gen = [sys.executable, str(REPO / "scripts" / "gen_csv.py"), str(n), str(files[n])]
                subprocess.run(gen, check=True)
            for _ in range(args.rounds):
                for size in SIZES:
                    urllib.request.urlopen(urllib.request.Request(f"{base}/_mock/reset", method="POST"))  # noqa: S310
                    src = files[args.rows_single if size == 1 else args.rows]
                    result = _one(url, src, size, work)
                    runs[str(size)].append(result)
                    print(json.dumps(result), flush=True)
    finally:
        server.terminate()
        server.wait()
    summary = {}
    for size, results in runs.items():
        summary[size] = {
            "records_per_s": statistics.median(r["records_per_s"] for r in results),
            "client_cpu_us_per_record": statistics.median(r["client_cpu_us_per_record"] for r in results),
            "mean_batch_size": statistics.median(r["mean_batch_size"] or 0 for r in results),
            "requests": statistics.median(r["requests"] for r in results),
            "rows": results[0]["rows"],
        }
    doc = {
        "what": "Loader + CrmClient + journal into the mock's Organization service, 4 workers",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "rounds": args.rounds,
        "median": summary,
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    for size, row in summary.items():
        print(
            f"batch {size:>5}: {row['records_per_s']:>8.0f} records/s, "
            f"{row['client_cpu_us_per_record']:>6.0f} us CPU/record, mean batch {row['mean_batch_size']}"
        )


if __name__ == "__main__":
    main()

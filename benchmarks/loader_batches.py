"""The whole loader, library API: one CSV through the Organization service in batches vs CRM 4.0 row by row.

``Loader(CrmClient(url), "account").run(CsvSource(csv))`` for the same file, against one mock in its own
process (emptied before every run): the Organization service with ``batch_size=1000``, and the 2007 endpoint
(one Create per row). Both at ``rate="unlimited"`` (what the client and mock can do) and at the default rate
(the port budget, ~16 calls/s: what a user gets without tuning; the 2007 run then loads only the first
``--slow-rows`` rows). Per run: records/s from the loader's summary, rows stored in the mock, and the
sockets the mock accepted for the run (``connections_accepted``).

Run: ``python -m benchmarks.loader_batches [--rows 20000] [--reps 3]``; writes
``benchmarks/results/loader_batches.json``. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.scenarios import write_csv

ORG_PATH = "/XRMServices/2011/Organization.svc/web"


def load_once(
    mock: harness.Mock, csv_path: Path, endpoint: str, rate: str | None, workers: int
) -> dict[str, Any]:
    """One ``Loader.run`` of ``csv_path`` through the library; the mock's counts for it."""
    from crmload import CrmClient
    from crmload.load import CsvSource, Loader

    url = mock.base + ORG_PATH if endpoint == "2011" else mock.url
    mock.reset()
    before, cpu0 = mock.stats(), mock.cpu_s()
    c0 = time.process_time()
    with CrmClient(url, org="Contoso", workers=workers, rate=rate) as client:
        extra = {"batch_size": 1000 if endpoint == "2011" else 1}
        summary = Loader(client, "account", workers=workers, **extra).run(CsvSource(csv_path))
    cpu = time.process_time() - c0
    after, cpu1 = mock.stats(), mock.cpu_s()
    server = harness.stats_delta(before, after)
    doc = summary.to_dict()
    return {
        "endpoint": endpoint,
        "rate": rate or "default (port budget)",
        "workers": workers,
        "rows": doc.get("read"),
        "done": doc.get("done"),
        "rejected": doc.get("rejected"),
        "records_per_s": doc.get("records_per_s"),
        "duration_s": doc.get("duration_s"),
        "batches": doc.get("batches"),
        "mean_batch_size": doc.get("mean_batch_size"),
        "client_cpu_us_per_record": cpu / doc["done"] * 1e6 if doc.get("done") else None,
        "mock_cpu_us_per_record": (cpu1 - cpu0) / doc["done"] * 1e6 if doc.get("done") else None,
        "stored": server["records_by_entity"].get("account", 0),
        "sockets": server["connections_accepted"],
        "requests": server["requests"],
        "batch_sizes": after.get("batch_sizes"),
        "loadavg_at_start": list(os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every configuration ``--reps`` times, interleaved, and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--slow-rows", type=int, default=480, help="rows for 2007 at the default rate (~16/s)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path, default=harness.RESULTS)
    args = p.parse_args(argv)
    started = time.monotonic()
    configs = [("2011", "unlimited"), ("2007", "unlimited"), ("2011", None), ("2007", None)]
    runs = []
    with tempfile.TemporaryDirectory() as tmp, harness.mock_env() as mock:
        full = write_csv(Path(tmp) / "accounts.csv", args.rows, tag="loader")
        head = write_csv(Path(tmp) / "accounts-head.csv", args.slow_rows, tag="loader")
        for rep, (endpoint, rate) in harness.interleave(configs, args.reps):
            csv_path = head if endpoint == "2007" and rate is None else full
            res = load_once(mock, csv_path, endpoint, rate, args.workers)
            res["rep"] = rep
            print(
                f"{endpoint} rate={res['rate']:<22} {res['done']:>6} rows {res['records_per_s']:>9.0f} rec/s "
                f"sockets {res['sockets']} requests {res['requests']} stored {res['stored']}",
                flush=True,
            )
            runs.append(res)
    summary = []
    for endpoint, rate in configs:
        mine = [
            r for r in runs if r["endpoint"] == endpoint and r["rate"] == (rate or "default (port budget)")
        ]
        rates = [r["records_per_s"] for r in mine]
        summary.append(
            {
                "endpoint": endpoint,
                "rate": mine[0]["rate"],
                "rows": mine[0]["rows"],
                "records_per_s": statistics.median(rates),
                "records_per_s_min": min(rates),
                "records_per_s_max": max(rates),
                "sockets": statistics.median(r["sockets"] for r in mine),
                "requests": statistics.median(r["requests"] for r in mine),
                "all_stored": all(r["stored"] == r["rows"] == r["done"] for r in mine),
            }
        )
    doc = {
        "rows": args.rows,
        "slow_rows": args.slow_rows,
        "workers": args.workers,
        "runs": runs,
        "summary": summary,
    }
    path = harness.write_result(args.out, "loader_batches", doc, quick=False, started=started)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Dask path at full size (issue 13 acceptance 6): 100,000 rows from 8 partitions on a LocalCluster of 4
worker processes (``distributed``), under one call budget shared through Redis.

``crmload.dask.load`` loads a bag of 100,000 keyed account rows (8 partitions) into one mock (Organization
service, batches of ``BATCH`` rows) with ``rate=RATE`` calls/s shared by every worker through Redis.
The mock answers busy above ``SERVER_LIMIT`` requests/s (a server limit, 5 % above the budget). Recorded: the
merged status (equation, per partition), every key's count in the mock's store (each must be 1), the mock's
requests, throttles and busiest 1 s window, records/s over the load, and the workers that ran the partitions.
Needs ``crmload[dask]``, redis-py and ``redis-server``; writes ``benchmarks/results/dask_load.json``; asserts
nothing about speed.

Run: ``python -m benchmarks.dask_load [--quick]`` (``--quick``: 20,000 rows).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.shared_budget import _busiest, _start_redis
from crmload.mock import FaultPlan, MockCrm

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = 100_000
PARTITIONS = 8
WORKERS = 4
RATE = 100.0
BATCH = 20
SERVER_LIMIT = 1.05 * RATE


def _busiest_at(counts: dict[int, int], bins: int, bin_s: float) -> float:
    """Seconds from the first request to the start of the busiest 1 s window."""
    lo, hi = min(counts), max(counts)
    series = [counts.get(i, 0) for i in range(lo, hi + 1)]
    window = best = sum(series[:bins])
    at = 0
    for i in range(bins, len(series)):
        window += series[i] - series[i - bins]
        if window > best:
            best, at = window, i - bins + 1
    return round(at * bin_s, 2)


def _per_second(counts: dict[int, int], bin_s: float) -> list[int]:
    """Requests in each whole second from the first request (the last, partial second included)."""
    lo = min(counts)
    out: list[int] = []
    for b, n in counts.items():
        sec = int((b - lo) * bin_s)
        out += [0] * (sec + 1 - len(out))
        out[sec] += n
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure and write ``benchmarks/results/dask_load.json``."""
    import dask.bag as db
    import distributed

    from crmload.dask import load

    rows = ROWS // 5 if "--quick" in (argv if argv is not None else sys.argv[1:]) else ROWS
    data = [
        {"accountnumber": f"A-{i}", "name": f"Account {i}", "telephone1": f"555-{i}"} for i in range(rows)
    ]
    with tempfile.TemporaryDirectory(prefix="crmload-dask-") as tmp:
        redis_proc, redis_url = _start_redis(Path(tmp))
        try:
            with (
                MockCrm(org="Contoso", faults=FaultPlan(busy_above_rate=SERVER_LIMIT)) as crm,
                distributed.LocalCluster(
                    n_workers=WORKERS,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                ) as cluster,
                distributed.Client(cluster),
            ):
                bag = db.from_sequence(data, npartitions=PARTITIONS)
                options = {"url": crm.url2011, "rate": RATE, "budget_store": redis_url}
                started = time.monotonic()
                status = load(
                    bag,
                    entity="account",
                    key="accountnumber",
                    client_options=options,
                    journal_dir=Path(tmp) / "journals",
                    batch_size=BATCH,
                )
                wall = time.monotonic() - started
                stats = crm.stats()
                keys = Counter(r["accountnumber"] for r in crm.records("account"))
        finally:
            redis_proc.kill()
            redis_proc.wait()
    t = stats["requests_timeline"]
    counts = {int(k): n for k, n in t["counts"].items()}
    span = (max(counts) - min(counts)) * t["bin_s"]
    print(status.render())
    doc = {
        "benchmark": f"crmload.dask.load: {rows} rows, {PARTITIONS} partitions, LocalCluster of {WORKERS} "
        f"worker processes, rate {RATE:g} calls/s shared through Redis, batches of {BATCH}, server limit "
        f"{SERVER_LIMIT:g} req/s",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "rows": rows,
        "partitions": PARTITIONS,
        "worker_processes": WORKERS,
        "rate": RATE,
        "batch_size": BATCH,
        "server_limit": SERVER_LIMIT,
        "complete": status.complete,
        "equation": status.equation(),
        "records_in_store": sum(keys.values()),
        "distinct_keys": len(keys),
        "every_row_once": len(keys) == rows and set(keys.values()) == {1},
        "requests": stats["requests"],
        "throttled": stats["faults_by_kind"].get("busy_above_rate", 0),
        "requests_per_s": round(stats["requests"] / span, 2),
        "busiest_1s_window": _busiest(counts, round(1 / t["bin_s"])),
        "busiest_1s_window_at_s": _busiest_at(counts, round(1 / t["bin_s"]), t["bin_s"]),
        "requests_per_second": _per_second(counts, t["bin_s"]),
        "records_per_s": round(rows / span, 1),
        "wall_s": round(wall, 2),
        "workers_used": sorted({p.run["worker"] for p in status.parts}),
        "partitions_detail": [
            {
                "shard": p.shard,
                "read": p.read,
                "done": p.done,
                **{k: p.run[k] for k in ("worker", "requests")},
            }
            for p in status.parts
        ],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "dask_load.json"
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(
        f"{doc['records_per_s']} rec/s, {doc['requests_per_s']} req/s, "
        f"busiest 1 s {doc['busiest_1s_window']}, throttled {doc['throttled']}, "
        f"every row once: {doc['every_row_once']}"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

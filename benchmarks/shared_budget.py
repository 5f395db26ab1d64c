"""Shared budget scaling (issue 13): 1, 2 and 4 processes loading against one server limit, with and without
a budget shared through Redis.

Each process is a ``CrmClient`` with ``--rate RATE`` and 4 workers, creating its part of ``ROWS`` records in a
mock that answers busy above ``SERVER_LIMIT`` requests/s (a server limit, as service protection does). The
mock's own
timeline is the judge: combined records/s from first to last request, the busiest 1 s window, and the busy
answers (throttles) it sent. Without a shared store every process spends the whole rate, so N processes
overshoot it N-fold and the server throttles; with one, the processes split it. Needs ``redis-server`` on PATH
and redis-py; results go to ``benchmarks/results/shared_budget.json``; nothing here asserts a speed.

Run: ``python -m benchmarks.shared_budget [--quick]`` (about a minute; ``--quick`` a third of the rows).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from crmload.mock import FaultPlan, MockCrm

RESULTS = Path(__file__).resolve().parent / "results"
RATE = 200.0
BURST = 1
#: The server's limit: 5 % above the budget, as a real one leaves no exact edge to sit on (at exactly the
#: rate, arrival jitter alone made one process meet ~16 throttles per 1,000 calls).
SERVER_LIMIT = 1.05 * RATE
ROWS = 3000
WORKER = """
import sys, threading, itertools
from crmload.client import CrmClient
from crmload.throttle import RateLimit
url, store, rate, rows, prefix = sys.argv[1:]
count = itertools.count()
with CrmClient(url, org="Contoso", workers=4, rate=RateLimit(per_second=float(rate)),
               budget_store=store or None) as crm:
    def work():
        while (i := next(count)) < int(rows):
            crm.create("account", {"name": f"{prefix}-{i}"})
    ts = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.01)
    raise SystemExit("redis-server did not start")


def _busiest(counts: dict[int, int], bins: int) -> int:
    lo, hi = min(counts), max(counts)
    series = [counts.get(i, 0) for i in range(lo, hi + 1)]
    window = best = sum(series[:bins])
    for i in range(bins, len(series)):
        window += series[i] - series[i - bins]
        best = max(best, window)
    return best


def run_one(crm: MockCrm, procs: int, store: str, rows: int) -> dict[str, Any]:
    """Load ``rows`` records split over ``procs`` processes; the mock's counts of what it saw."""
    crm.reset()
    crm.configure(FaultPlan(busy_above_rate=SERVER_LIMIT))
    started = time.monotonic()
    running = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, crm.url, store, str(RATE), str(rows // procs), f"p{i}"]
        )
        for i in range(procs)
    ]
    codes = [p.wait(timeout=600) for p in running]
    wall = time.monotonic() - started
    stats = crm.stats()
    t = stats["requests_timeline"]
    counts = {int(k): n for k, n in t["counts"].items()}
    span = (max(counts) - min(counts)) * t["bin_s"]
    records = len(crm.records("account"))
    throttled = stats["faults_by_kind"].get("busy_above_rate", 0)
    busiest = _busiest(counts, round(1 / t["bin_s"]))
    return {
        "processes": procs,
        "shared_budget": bool(store),
        "rate_per_process": RATE,
        "records": records,
        "exit_codes": codes,
        "requests": stats["requests"],
        "throttled": throttled,
        "records_per_s": round(records / span, 1),
        "requests_per_s": round(stats["requests"] / span, 1),
        "busiest_1s_window": busiest,
        "overshoots_server_limit": busiest > SERVER_LIMIT,
        "busiest_minus_rate_plus_burst": busiest - int(RATE + BURST),
        "wall_s": round(wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and write ``benchmarks/results/shared_budget.json``."""
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    rows = ROWS // 3 if quick else ROWS
    out_rows = []
    with tempfile.TemporaryDirectory(prefix="crmload-redis-") as tmp:
        redis_proc, url = _start_redis(Path(tmp))
        try:
            with MockCrm(org="Contoso") as crm:
                for procs in (1, 2, 4):
                    for store in ("", url):
                        row = run_one(crm, procs, store, rows)
                        out_rows.append(row)
                        print(
                            f"procs={procs} shared={row['shared_budget']!s:5}"
                            f"  {row['records_per_s']:7.1f} rec/s"
                            f"  busiest 1 s: {row['busiest_1s_window']:4d}  throttled {row['throttled']}"
                        )
        finally:
            redis_proc.kill()
            redis_proc.wait()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "shared_budget.json"
    doc = {
        "benchmark": "shared budget: combined records/s of 1, 2 and 4 processes, each --rate 200, server"
        " limit 210 req/s (mock busy_above_rate), with and without a Redis-shared budget",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "rate": RATE,
        "server_limit": SERVER_LIMIT,
        "rows": rows,
        "workers_per_process": 4,
        "results": out_rows,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The server's budget (issue 10): loading under service-protection limits, crmload against today's tools.

The mock enforces 200 requests / 4 s of execution / 8 concurrent requests per user over a 10 s window, at
2 ms of server time per record (``--exec-ms-per-record 2``): the tightest facet is execution time, which
allows 4 s / 10 s / 2 ms = **200 records/s** (requests would allow 20 batches/s, concurrency 8 / 2 ms =
4,000 records/s). Contenders, interleaved, each on a fresh mock, each loading ``ROWS`` rows:

- ``crmload auto``: ``crmload import --rate auto --batch-size auto --workers 8``; it assumes the documented
  defaults (6000/1200/52 per 300 s), so it meets the scaled limits and learns them from the first fault;
- ``crmload limits``: the same with ``--server-limits 200/4/8/10`` known up front;
- ``naive``: today's tools: 8 threads, batches of 100, each thread sleeping on its own fault for the
  Retry-After and resending the batch (a ``requests.Session`` per thread, crmload's codec for the envelope).

A sampler reads the mock every 0.1 s (records stored, requests in flight for the user). The judge is the mock:
throttles by facet, penalty seconds handed out, records stored (each exactly once), total time.
Results go to ``benchmarks/results/server_budget.json``; nothing here asserts a speed.

Run: ``python -m benchmarks --only server_budget`` or ``python -m benchmarks.server_budget [--quick]``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from crmload.mock import FaultPlan, MockCrm
from crmload.mock.protection import ServiceLimits

RESULTS = Path(__file__).resolve().parent / "results"
LIMITS = ServiceLimits(requests=200, exec_s=4.0, concurrent=8, window_s=10.0)
EXEC_MS = 2.0
ROWS = 30_000
TOKEN = "bench-token"  # noqa: S105 - the mock's test token
SAMPLE_S = 0.1
CONTENDERS = ("crmload auto", "naive", "crmload limits")


def facet_ceilings(
    limits: ServiceLimits = LIMITS, exec_ms: float = EXEC_MS, batch: int = 1000
) -> dict[str, float]:
    """Records/s each facet allows on its own (requests at the given batch size), and the tightest."""
    per_record = exec_ms / 1000
    out = {
        "requests": limits.requests / limits.window_s * batch,
        "execution_time": limits.exec_s / limits.window_s / per_record,
        "concurrency": limits.concurrent / per_record,
    }
    return {**out, "tightest": min(out.values())}


def _csv(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["accountnumber", "name"])
        w.writerows([f"B-{i:06d}", f"Budget bench {i}"] for i in range(n))
    return path


class Sampler:
    """Reads the mock every ``SAMPLE_S``: seconds since start, records created, the user's calls in flight."""

    def __init__(self, crm: MockCrm) -> None:
        self.crm = crm
        self.rows: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            created = int(self.crm.stats_counter.items_by_op.get("Create", 0))
            users = self.crm.protection._users  # a benchmark's peek: the counter without a snapshot copy
            user = users.get("loader")
            in_flight = user.in_flight if user is not None else 0
            self.rows.append((round(time.monotonic() - self.t0, 3), created, in_flight))

    def __enter__(self) -> Sampler:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def run_crmload(crm: MockCrm, src: Path, scratch: Path, *, limits: str | None) -> dict[str, Any]:
    """``crmload import`` in-process (auto rate and batch size, 8 workers); returns its --json summary."""
    from crmload.cli import main

    args = ["import", str(src), "--entity", "account", "--url", crm.url2011, "--token-env", "CRM_TOKEN"]
    args += ["--workers", "8", "--rate", "auto", "--batch-size", "auto", "--no-progress", "--json"]
    args += ["--journal", str(scratch / f"j-{time.monotonic_ns()}"), "-q"]
    if limits:
        args += ["--server-limits", limits]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(args)
    summary: dict[str, Any] = json.loads(out.getvalue())
    summary["exit_code"] = code
    return summary


def run_naive(crm: MockCrm, src: Path, *, workers: int = 8, batch: int = 100) -> dict[str, Any]:
    """Today's tools: ``workers`` threads, fixed batches, each thread sleeping on its own fault."""
    import requests

    from crmload.batch import CreateRequest
    from crmload.errors import ServerBusyError
    from crmload.soap.dialect import build_dialect

    with src.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    dialect = build_dialect(crm.url2011)
    headers = {
        "Content-Type": dialect.content_type,
        "SOAPAction": dialect.codec.soap_action("ExecuteMultiple"),
        "Authorization": f"Bearer {TOKEN}",
    }
    lock = threading.Lock()
    counts: Counter[str] = Counter()
    slept = [0.0]

    def work() -> None:
        session = requests.Session()
        while True:
            with lock:
                if not batches:
                    return
                chunk = batches.pop()
            body = dialect.codec.build_execute_multiple(  # type: ignore[attr-defined]
                [CreateRequest("account", r) for r in chunk], continue_on_error=True
            )
            while True:
                reply = session.post(dialect.url, data=body, headers=headers, timeout=120)
                if reply.status_code == 200:
                    with lock:
                        counts["batches"] += 1
                    break
                error = dialect.parse_fault(reply.status_code, reply.content, reply.headers)
                if not isinstance(error, ServerBusyError):
                    raise RuntimeError(f"naive contender: {error}")
                wait = error.retry_after if error.retry_after is not None else 1.0
                with lock:
                    counts["faults"] += 1
                    slept[0] += wait
                time.sleep(wait)  # this thread only: the others keep sending

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "batches": counts["batches"],
        "faults_seen": counts["faults"],
        "worker_sleep_s": round(slept[0], 3),
    }


def run_one(name: str, src: Path, rows: int, scratch: Path) -> dict[str, Any]:
    """One contender on a fresh mock; the mock's counters and the sampled series."""
    crm = MockCrm(
        org="Contoso", tokens={TOKEN: "loader"}, limits=LIMITS, faults=FaultPlan(exec_ms_per_record=EXEC_MS)
    )
    crm.start()
    try:
        started = time.monotonic()
        with Sampler(crm) as sampler:
            if name == "naive":
                client = run_naive(crm, src)
            else:
                limits = f"{LIMITS.requests}/{LIMITS.exec_s:g}/{LIMITS.concurrent}/{LIMITS.window_s:g}"
                client = run_crmload(crm, src, scratch, limits=limits if name == "crmload limits" else None)
        total_s = time.monotonic() - started
        stats = crm.stats()
        user = stats["service_protection"]["users"]["loader"]
        names = Counter(str(r["accountnumber"]) for r in crm.records("account"))
    finally:
        crm.stop()
    requests_sent = int(stats["requests"])
    throttles = int(user["throttles_total"])
    ceiling = facet_ceilings()["tightest"]
    return {
        "contender": name,
        "rows": rows,
        "total_s": round(total_s, 2),
        "records_per_s": round(rows / total_s, 1),
        "share_of_tightest": round(rows / total_s / ceiling, 3),
        "requests": requests_sent,
        "throttles": throttles,
        "throttles_by_facet": user["throttles"],
        "throttled_share": round(throttles / requests_sent, 4) if requests_sent else None,
        "penalty_s": round(sum(user["penalty_s"].values()), 2),
        "penalty_extensions": user["penalty_extensions"],
        "peak_concurrency": user["peak"]["concurrency"],
        "windows": user["windows"],
        "stored": sum(names.values()),
        "stored_once": len(names) == rows and set(names.values()) == {1},
        "client": client.get("client", client) if isinstance(client, dict) else client,
        "series": sampler.rows,
    }


def run(rows: int = ROWS, reps: int = 1, log: Any = print) -> dict[str, Any]:
    """Every contender ``reps`` times, interleaved; the document written to ``server_budget.json``."""
    import os

    os.environ["CRM_TOKEN"] = TOKEN
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        src = _csv(scratch / "rows.csv", rows)
        for rep in range(reps):
            for name in CONTENDERS:
                res = run_one(name, src, rows, scratch)
                res["rep"] = rep
                log(
                    f"  server_budget {name:15s} {res['total_s']:7.1f} s {res['records_per_s']:6.1f}/s "
                    f"({100 * res['share_of_tightest']:.0f} % of {facet_ceilings()['tightest']:.0f}/s), "
                    f"throttles {res['throttles']}, penalty {res['penalty_s']} s, "
                    f"stored once {res['stored_once']}"
                )
                runs.append(res)
    return {
        "limits": LIMITS.to_dict(),
        "exec_ms_per_record": EXEC_MS,
        "rows": rows,
        "reps": reps,
        "ceilings": facet_ceilings(),
        "runs": runs,
        **_verdict(runs),
    }


def _verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault(r["contender"], []).append(r)

    def med(name: str, key: str) -> float:
        values = sorted(float(r[key]) for r in by.get(name, []))
        return values[len(values) // 2] if values else float("nan")

    summary = [
        {
            "contender": name,
            "total_s": med(name, "total_s"),
            "records_per_s": med(name, "records_per_s"),
            "share_of_tightest": med(name, "share_of_tightest"),
            "requests": med(name, "requests"),
            "throttles": med(name, "throttles"),
            "throttled_share": med(name, "throttled_share"),
            "penalty_s": med(name, "penalty_s"),
            "stored_once": all(r["stored_once"] for r in by.get(name, [])),
        }
        for name in CONTENDERS
        if name in by
    ]
    auto, naive, known = (next((s for s in summary if s["contender"] == n), {}) for n in CONTENDERS)
    fewer = (naive.get("throttles", 0) / auto["throttles"]) if auto.get("throttles") else float("inf")
    goals = {
        "auto_share_of_tightest_min": 0.9,
        "auto_throttled_share_max": 0.01,
        "naive_throttles_ratio_min": 20,
        "auto_share_of_tightest": auto.get("share_of_tightest"),
        "auto_throttled_share": auto.get("throttled_share"),
        "naive_over_auto_throttles": None if fewer == float("inf") else round(fewer, 1),
        "auto_faster_than_naive": auto.get("total_s", 1e9) < naive.get("total_s", 0),
        "limits_up_front_throttles": known.get("throttles"),
        "every_row_once": all(s["stored_once"] for s in summary),
    }
    goals["met"] = bool(
        (auto.get("share_of_tightest") or 0) >= 0.9
        and (auto.get("throttled_share") or 0) <= 0.01
        and fewer >= 20
        and goals["auto_faster_than_naive"]
        and known.get("throttles") == 0
        and goals["every_row_once"]
    )
    return {"summary": summary, "goals": goals}


def scenario(ctx: Any) -> dict[str, Any]:
    """The ``server_budget`` scenario of ``python -m benchmarks`` (quick: 6,000 rows; smoke: 600)."""
    rows = 600 if ctx.smoke else (6000 if ctx.quick else ROWS)
    return run(rows, reps=1, log=ctx.log)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    rows = 6000 if "--quick" in args else ROWS
    import os

    from benchmarks import harness

    load_before = list(os.getloadavg())
    started = time.monotonic()
    doc = run(rows)
    doc["loadavg_before"] = load_before
    path = harness.write_result(RESULTS, "server_budget", doc, quick=rows < ROWS, started=started)
    print(json.dumps(doc["goals"], indent=1))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Export and verify throughput, with the import's beside them in the same run (issue 12, acceptance 1 and 5).

Two mocks run as their own processes (``python -m crmload mock --port 0 --limits off``), so the client's CPU
time is its own. The run:
1. imports ``--rows`` generated accounts into mock A through the Organization service (``crmload import``
   in a child process: records/s);
2. exports them from A through CRM 4.0's endpoint and through the Organization service at ``--page-size``
   (in this process: rows/s and client CPU us/row from ``time.process_time``);
3. imports the 2007 export into mock B through the Organization service, verifies it (rows/s, batched reads),
   exports B again and compares bytes (acceptance 1);
4. measures the peak RSS of ``crmload export`` child processes at 1/10 and full size (flat memory).

Usage: ``python -m benchmarks.export_bench [--rows 100000] [--page-size 5000]``.
Writes ``benchmarks/results/export.json``. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "export.json"
REPO = Path(__file__).resolve().parent.parent
COLUMNS = (
    "accountid,accountnumber,name,revenue,numberofemployees,industrycode,lastusedincampaign,address1_city"
)
_RSS = (
    "import resource, sys\n"
    "from crmload.cli import main\n"
    "code = main(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
    "sys.exit(code)\n"
)


@contextlib.contextmanager
def _mock() -> Iterator[str]:
    """A mock CRM in its own process; yields its base URL."""
    proc = subprocess.Popen(
        # No service-protection limits: this measures throughput (a real org allows 6,000 requests per user
        # in 5 minutes, and import sends one request per row until it batches).
        [sys.executable, "-m", "crmload", "mock", "--port", "0", "--limits", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip().split("/MSCRMServices", 1)[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _source(path: Path, rows: int) -> None:
    cities = ["Kraków", "東京", "São Paulo", ""]
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(COLUMNS.removeprefix("accountid,") + "\r\n")
        for i in range(rows):
            rev = f"{i * 10}.5" if i % 3 else ""
            name = f'"Acme, {i}"' if i % 2 else f"Zoë {i}"
            when = f"2021-0{i % 9 + 1}-02T10:00:00+02:00"
            fh.write(f"A-{i:07d},{name},{rev},{i % 5000},{i % 5 + 1},{when},{cities[i % 4]}\r\n")


def _cli(argv: list[str]) -> tuple[int, dict[str, Any], float]:
    """Run the CLI in a child process (its own CPU and GIL); return exit code, JSON summary, wall seconds."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "crmload", *argv, "--json", "--no-progress"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    wall = time.perf_counter() - start
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1]), wall


def _export_here(url: str, out: Path, page_size: int) -> dict[str, Any]:
    """Export in this process: rows/s and the client's CPU per row (the mock is another process)."""
    from crmload.client import CrmClient
    from crmload.read import Exporter, ExportSpec

    spec = ExportSpec(entity="account", columns=tuple(COLUMNS.split(",")), page_size=page_size)
    with CrmClient(url, org="Contoso", rate="unlimited") as client:
        cpu, wall = time.process_time(), time.perf_counter()
        summary = Exporter(client, spec).run(out, force=True)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "rows": summary.rows,
        "pages": summary.pages,
        "requests": summary.requests,
        "sockets_opened": summary.sockets_opened,
        "seconds": round(wall, 2),
        "rows_per_s": round(summary.rows / wall),
        "client_cpu_us_per_row": round(cpu / max(1, summary.rows) * 1e6, 1),
    }


def _peak_rss_kb(url: str, out: Path, tmp: Path, rows_note: str) -> int:
    flag = tmp / f"rss-{rows_note}.txt"
    argv = ["export", "--entity", "account", "--url", url, "--org", "Contoso", "--columns", COLUMNS]
    argv += ["--rate", "unlimited", "-o", str(out), "--force", "--no-progress", "--json"]
    subprocess.run([sys.executable, "-c", _RSS, str(flag), *argv], capture_output=True, cwd=REPO, check=True)
    return int(flag.read_text())


def main(argv: list[str] | None = None) -> int:
    """Run the scenario and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--page-size", type=int, default=5000)
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"rows": args.rows, "page_size": args.page_size}
    with tempfile.TemporaryDirectory(prefix="crmload-export-bench-") as tmpdir, _mock() as a, _mock() as b:
        tmp = Path(tmpdir)
        src = tmp / "seed.csv"
        _source(src, args.rows)
        a07, a11 = f"{a}/MSCRMServices/2007/CrmService.asmx", f"{a}/XRMServices/2011/Organization.svc/web"
        b07, b11 = f"{b}/MSCRMServices/2007/CrmService.asmx", f"{b}/XRMServices/2011/Organization.svc/web"
        imp = ["--entity", "account", "--org", "Contoso", "--rate", "unlimited"]
        rc, summary, wall = _cli(["import", str(src), "--url", a11, *imp, "--key", "accountnumber"])
        result["import_seed"] = {
            "exit_code": rc,
            "done": summary.get("done"),
            "records_per_s": round(args.rows / wall),
        }
        first = tmp / "export-2007.csv"
        result["export"] = {
            "2007": _export_here(a07, first, args.page_size),
            "2011": _export_here(a11, tmp / "export-2011.csv", args.page_size),
        }
        result["export_files_equal_across_endpoints"] = (
            first.read_bytes() == (tmp / "export-2011.csv").read_bytes()
        )
        rc, summary, wall = _cli(["import", str(first), "--url", b11, *imp, "--no-trim"])
        result["import"] = {
            "exit_code": rc,
            "done": summary.get("done"),
            "records_per_s": round(args.rows / wall),
        }
        rc, summary, wall = _cli(
            [
                "verify",
                str(first),
                "--entity",
                "account",
                "--url",
                b11,
                "--org",
                "Contoso",
                "--no-trim",
                "--rate",
                "unlimited",
            ]
        )
        ent = summary["entities"][0]
        result["verify"] = {
            "exit_code": rc,
            "result": ent["result"],
            "checked": ent["checked"],
            "compared": ent["compared"],
            "requests": ent["requests"],
            "records_per_s": round(args.rows / wall),
        }
        second = tmp / "export-again.csv"
        result["export_again"] = _export_here(b07, second, args.page_size)
        result["round_trip_identical"] = second.read_bytes() == first.read_bytes()
        small = max(1000, args.rows // 10)
        rss_small = _peak_rss_kb(f"{a07}", tmp / "rss.csv", tmp, "full")
        result["peak_rss_mb"] = {f"{args.rows}_rows": round(rss_small / 1024, 1)}
        # A tenth of the rows: a second mock holding only those, exported the same way.
        with _mock() as c:
            tenth = tmp / "tenth.csv"
            _source(tenth, small)
            _cli(["import", str(tenth), "--url", f"{c}/XRMServices/2011/Organization.svc/web", *imp])
            rss = _peak_rss_kb(f"{c}/MSCRMServices/2007/CrmService.asmx", tmp / "rss2.csv", tmp, "tenth")
            result["peak_rss_mb"][f"{small}_rows"] = round(rss / 1024, 1)
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    with contextlib.redirect_stderr(io.StringIO()):
        raise SystemExit(main())

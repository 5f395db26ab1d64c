"""A plan against the sum of separate imports of the same files (issue 11, acceptance 6).

Data (``write_plan_files``): accounts, then contacts, opportunities and cases (incidents) that point at the
accounts (contacts also at nothing else, opportunities and cases at contacts too). For the comparison the
accounts carry no self-reference, since separate imports cannot load one in a single file. Contenders, each
against one mock in its own process (emptied before every run):
- ``imports``: ``python -m crmload import`` once per file, in dependency order (what a user runs today);
- ``migrate``: one ``python -m crmload migrate plan.toml``: accounts then contacts, then opportunities and
  cases share a tier and run concurrently under the one client.
Both at the same ``--workers``, ``--batch-size`` and unlimited rate, with the mock's latency set so the
network is not free (``--latency-ms``). records/s = rows of all files / wall time of all processes.
Run: ``python -m benchmarks.plan_bench [--rows 20000] [--reps 3]``; writes ``benchmarks/results/plan.json``.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

ORG_PATH = "/XRMServices/2011/Organization.svc/web"

MAPS = {
    "accounts.map.toml": 'key = "account_code"\n[columns]\n'
    'parentaccountid = { lookup = "account", key = "parent_code" }\n'
    'primarycontactid = { lookup = "contact", key = "primary_contact" }\n',
    "contacts.map.toml": 'key = "contact_code"\n[options]\nempty_as_null = true\n[columns]\n'
    'parentcustomerid = { lookup = "account", key = "account_code" }\n',
    "opportunities.map.toml": 'key = "opportunity_code"\n[options]\nempty_as_null = true\n[columns]\n'
    'customerid = { lookup = "account", key = "account_code" }\n'
    'new_decisionmakerid = { lookup = "contact", key = "contact_code" }\n',
    "cases.map.toml": 'key = "case_code"\n[options]\nempty_as_null = true\n[columns]\n'
    'customerid = { lookup = "account", key = "account_code" }\n'
    'responsiblecontactid = { lookup = "contact", key = "contact_code" }\n',
}
#: Listed children first on purpose: the plan orders them. Inside the accounts <-> contacts cycle the listed
#: order holds, so the accounts' primary contacts are the lookups set by the update pass.
LOADS = (
    ("cases.csv", "incident", "cases.map.toml"),
    ("opportunities.csv", "opportunity", "opportunities.map.toml"),
    ("accounts.csv", "account", "accounts.map.toml"),
    ("contacts.csv", "contact", "contacts.map.toml"),
)
#: What a user runs by hand, one import per file: parents first.
IMPORT_ORDER = (LOADS[2], LOADS[3], LOADS[1], LOADS[0])


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def write_plan_files(
    folder: Path, rows: int, *, seed: int = 11, self_ref: bool = True, cycle: bool = True
) -> dict[str, list[list[str]]]:
    """Write a 4-entity plan of about ``rows`` rows (``plan.toml``, CSVs, maps); return each file's rows.

    Accounts are a quarter of the rows; with ``self_ref`` each non-root account names a parent (listed after
    it in the file: parents last), with ``cycle`` most name a primary contact (contacts point back at them).
    """
    rng = random.Random(seed)
    n_acc = max(rows // 4, 4)
    n_con = max(rows // 4, 4)
    n_opp = max(rows // 4, 4)
    n_case = max(rows - n_acc - n_con - n_opp, 4)
    acc = [f"A{i}" for i in range(n_acc)]
    con = [f"C{i}" for i in range(n_con)]
    acct_of = [acc[rng.randrange(n_acc)] for _ in con]
    parents = ["" if i < 4 or not self_ref else acc[rng.randrange(0, i // 2)] for i in range(n_acc)]
    primary = dict.fromkeys(acc, "")
    if cycle:
        for c, a in zip(con, acct_of, strict=True):
            primary[a] = primary[a] or c
    data = {
        "accounts.csv": [[a, f"Account {a}", parents[i], primary[a]] for i, a in enumerate(acc)][::-1],
        "contacts.csv": [[c, acct_of[i], f"Last {c}"] for i, c in enumerate(con)],
        "opportunities.csv": [
            [f"O{i}", f"Deal {i}", acct_of[j], con[j]] for i in range(n_opp) for j in [rng.randrange(n_con)]
        ],
        "cases.csv": [
            [f"K{i}", f"Case {i}", acct_of[j], con[j]] for i in range(n_case) for j in [rng.randrange(n_con)]
        ],
    }
    _write(
        folder / "accounts.csv",
        ["account_code", "name", "parent_code", "primary_contact"],
        data["accounts.csv"],
    )
    _write(folder / "contacts.csv", ["contact_code", "account_code", "lastname"], data["contacts.csv"])
    _write(
        folder / "opportunities.csv",
        ["opportunity_code", "name", "account_code", "contact_code"],
        data["opportunities.csv"],
    )
    _write(folder / "cases.csv", ["case_code", "title", "account_code", "contact_code"], data["cases.csv"])
    for name, text in MAPS.items():
        (folder / name).write_text(text, encoding="utf-8")
    plan = "".join(f'[[load]]\nfile = "{f}"\nentity = "{e}"\nmap = "{m}"\n\n' for f, e, m in LOADS)
    (folder / "plan.toml").write_text(plan, encoding="utf-8")
    return data


def _run(argv: list[str]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    res = subprocess.run(
        argv, capture_output=True, text=True, cwd=harness.ROOT, env=harness.child_env(), check=False
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{argv[3]} exited {res.returncode}: {res.stderr[-800:]}")
    return wall, json.loads(res.stdout)


def run_imports(url: str, folder: Path, common: list[str]) -> dict[str, Any]:
    """``crmload import`` per file, parents first: wall time of the processes, rows done."""
    wall, done, run_s = 0.0, 0, 0.0
    for f, e, m in IMPORT_ORDER:
        secs, out = _run(
            [
                harness.PYTHON,
                "-m",
                "crmload",
                "import",
                str(folder / f),
                "--entity",
                e,
                "--map",
                str(folder / m),
                "--url",
                url,
                "--journal",
                str(folder / f"{f}.sqlite"),
                "--json",
                *common,
            ]
        )
        wall += secs
        done += out["done"]
        run_s += out["duration_s"]
    return {"wall_s": wall, "done": done, "run_s": round(run_s, 3)}


def run_migrate(url: str, folder: Path, common: list[str]) -> dict[str, Any]:
    """One ``crmload migrate``: wall time, rows done, the plan's own records/s."""
    wall, out = _run(
        [
            harness.PYTHON,
            "-m",
            "crmload",
            "migrate",
            str(folder / "plan.toml"),
            "--url",
            url,
            "--state-dir",
            str(folder / "state"),
            "--json",
            *common,
        ]
    )
    return {
        "wall_s": wall,
        "done": out["done"],
        "run_s": out["duration_s"],
        "order": out["order"],
    }


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="python -m benchmarks.plan_bench", description=__doc__)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--batch-size", default="200")
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--out", type=Path, default=harness.RESULTS)
    args = p.parse_args(argv)
    started = time.monotonic()
    common = [
        "--workers",
        str(args.workers),
        "--batch-size",
        args.batch_size,
        "--rate",
        "unlimited",
        "--no-progress",
        "-q",
    ]
    runs: dict[str, list[dict[str, Any]]] = {"imports": [], "migrate": []}
    mock = harness.Mock(["--latency-ms", str(args.latency_ms), "--limits", "off"])
    try:
        url = mock.base + ORG_PATH
        for _rep, name in harness.interleave(["imports", "migrate"], args.reps):
            with tempfile.TemporaryDirectory(prefix="crmload-plan-bench-") as tmp:
                folder = Path(tmp)
                write_plan_files(folder, args.rows, self_ref=False, cycle=False)
                mock.reset()
                result = (
                    run_imports(url, folder, common)
                    if name == "imports"
                    else run_migrate(url, folder, common)
                )
                result["stored"] = sum(mock.stats()["records_by_entity"].values())
                result["records_per_s"] = round(result["done"] / result["wall_s"], 1)
                # Without process start-up: the runs' own durations (import: summed over the files).
                result["records_per_s_in_run"] = round(result["done"] / result["run_s"], 1)
                runs[name].append(result)
                rate, done, wall = result["records_per_s"], result["done"], result["wall_s"]
                print(f"{name}: {rate} records/s ({done} rows, {wall:.2f} s)")
    finally:
        mock.stop()
    med = {n: statistics.median(r["records_per_s"] for r in rs) for n, rs in runs.items()}
    med_run = {n: statistics.median(r["records_per_s_in_run"] for r in rs) for n, rs in runs.items()}
    doc = {
        "description": "one migrate vs separate imports of the same 4 files",
        "rows": args.rows,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "latency_ms": args.latency_ms,
        "runs": runs,
        "median_records_per_s": med,
        "speedup": round(med["migrate"] / med["imports"], 2) if med["imports"] else None,
        "median_records_per_s_in_run": med_run,
        "speedup_in_run": round(med_run["migrate"] / med_run["imports"], 2) if med_run["imports"] else None,
        "goal": "migrate no slower than the sum of separate imports; faster where loads share a tier",
        "met": bool(med["imports"]) and med["migrate"] >= med["imports"],
    }
    inside = doc["speedup_in_run"] or 0.0
    if inside >= 1.05:
        run_words = "faster inside the run too: opportunities and cases share a tier under one client"
    elif inside >= 0.95:
        run_words = "about even inside the run: the gain is one process instead of four"
    else:
        run_words = (
            "slower inside the run: the plan's key index and update pass cost more than the shared tier saves"
        )
    doc["verdict"] = (
        f"migrate {med['migrate']:.0f} records/s against {med['imports']:.0f} for four imports by hand "
        f"({doc['speedup']}x, wall time with process start-ups); without start-up "
        f"{med_run['migrate']:.0f} vs {med_run['imports']:.0f} ({inside}x), {run_words}. "
        + ("Goal met: no slower." if doc["met"] else "Goal missed: slower.")
    )
    return harness.write_result(args.out, "plan", doc, quick=False, started=started)


if __name__ == "__main__":
    print(f"wrote {main()}")

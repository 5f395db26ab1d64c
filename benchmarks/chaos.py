"""Chaos run for exactly-once (issue 14): SIGKILL ``python -m crmload import`` again and again, and resume.

One mock CRM (in this process) answers 5 % busy, resets 2 % of connections after committing, and closes
keep-alive every 50 responses. A keyed and an unkeyed import of the same generated CSV are each killed at
seeded moments, counted in journal events rather than time: each run is killed once the journal shows at least
N done rows, N drawn from one seeded RNG, one draw per slice of the file. After the last kill a resume runs to
completion. Then the mock's store and the journal are compared row by row (``audit``).

The test ``tests/integration/test_chaos.py`` runs this and asserts on the audit; ``python -m benchmarks
--chaos`` runs it at full scale and writes ``benchmarks/results/chaos.json``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crmload.load import key_id
from crmload.mock import FaultPlan, MockCrm

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


#: The issue's fault mix. Busy answers carry ``Retry-After: 0``: without it every busy answer costs a
#: 0.5 s backoff window, 1,000 of them per 20,000 rows, which tests patience, not exactly-once.
def fault_plan(seed: int) -> FaultPlan:
    """The chaos fault plan: 5 % busy, 2 % reset after commit, ``Connection: close`` every 50 responses."""
    return FaultPlan(busy_rate=0.05, retry_after_s=0, reset_after_commit_rate=0.02, close_every=50, seed=seed)


@dataclass(slots=True)
class Kill:
    """One run of the import that was meant to be killed, and the journal as the kill left it."""

    threshold: int  # kill once the journal shows this many done rows
    landed: bool  # the process was still running when SIGKILL was sent
    returncode: int | None
    counts: dict[str, int]  # rows per journal state after the kill, plus "read" (every journalled row)
    in_flight: list[int] = field(default_factory=list)  # pending rows whose send had begun (attempts > 0)


@dataclass(slots=True)
class Phase:
    """One import (keyed or unkeyed) through its kills and its final resume."""

    keyed: bool
    rows: int
    kills: list[Kill] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # journal regressions seen between kills
    final: dict[str, Any] = field(default_factory=dict)  # the final resume's --json summary
    final_rc: int | None = None
    final_stderr: str = ""
    states: dict[int, str] = field(default_factory=dict)  # journal line -> state at the end
    lines: dict[int, str] = field(default_factory=dict)  # journal line -> accountnumber in the CSV
    records: list[dict[str, Any]] = field(default_factory=list)  # the mock's account records
    in_doubt_file_lines: list[int] | None = None
    faults: dict[str, int] = field(default_factory=dict)  # mock faults during this phase
    requests_by_op: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    lost_on_wire: list[int] = field(default_factory=list)  # rows a run itself put in doubt (answer lost)


def journal_states(journal: Path) -> dict[int, str] | None:
    """``{line: state}`` of every journalled row, read-only; None while the journal cannot be read yet."""
    if not journal.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1.0)
        try:
            return dict(db.execute("SELECT line, state FROM rows").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return None


def _query(journal: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the journal; empty while it cannot be read."""
    if not journal.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1.0)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []


def done_count(journal: Path) -> int:
    """Done rows in the journal, read-only; 0 while it cannot be read yet."""
    if not journal.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=0.1)
        try:
            return int(db.execute("SELECT count(*) FROM rows WHERE state = 'done'").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def thresholds(rows: int, kills: int, rng: random.Random, share: float = 0.95) -> list[int]:
    """One kill point per slice of the first ``share`` of the rows, drawn at random within its slice."""
    span = max(1, int(rows * share) // kills)
    return [k * span + rng.randrange(1, span + 1) for k in range(kills)]


def _counts(states: dict[int, str]) -> dict[str, int]:
    c = Counter(states.values())
    out = {s: c.get(s, 0) for s in ("pending", "done", "rejected", "in_doubt")}
    out["read"] = len(states)
    return out


def _regressions(before: dict[int, str], after: dict[int, str]) -> list[str]:
    """Settled rows must stay settled as they were: done stays done, in doubt stays in doubt (no re-send)."""
    bad = []
    for line, state in before.items():
        if state in ("done", "rejected", "in_doubt") and after.get(line) != state:
            bad.append(f"line {line}: {state} -> {after.get(line)}")
    return bad


def import_argv(
    src: Path,
    url: str,
    journal: Path,
    rejects: Path,
    *,
    keyed: bool,
    workers: int,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The ``python -m crmload import`` command line of one phase (without ``--resume``)."""
    argv = [PYTHON, "-m", "crmload", "import", str(src), "--entity", "account", "--url", url]
    argv += ["--org", "Contoso", "--journal", str(journal), "--rejects", str(rejects)]
    argv += ["--rate", "unlimited", "--workers", str(workers), "--json", "--no-progress", *extra]
    return argv + (["--key", "accountnumber"] if keyed else [])


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRMLOAD_")}


def _creating(stats: dict[str, Any]) -> Counter[str]:
    """Requests that create records (2007 Create, 2011 ExecuteMultiple) and all others, from mock stats."""
    out: Counter[str] = Counter()
    for dialect, ops in stats["requests_by_dialect"].items():
        for op, n in ops.items():
            creates = op in ("Create", "Execute:ExecuteMultiple", "Execute:Create")
            out["Create" if creates else f"{dialect}:{op}"] += n
    return out


def _kill_at(argv: list[str], journal: Path, threshold: int, timeout_s: float) -> tuple[bool, int | None]:
    """Run ``argv``; SIGKILL it once the journal shows ``threshold`` done rows; return (landed, exit code)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and done_count(journal) < threshold and time.monotonic() < deadline:
        time.sleep(0.01)
    landed = proc.poll() is None
    if landed:
        proc.send_signal(signal.SIGKILL)
    return landed, proc.wait()


def _source_lines(src: Path) -> dict[int, str]:
    """Journal line number -> its row's accountnumber (gen_csv without --messy: one physical line a row)."""
    with src.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        lines = {}
        for row in reader:
            lines[reader.line_num] = row[0]
        return lines


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def run_phase(
    crm: MockCrm,
    src: Path,
    work: Path,
    *,
    keyed: bool,
    kills: int,
    seed: int,
    workers: int,
    url: str | None = None,
    extra: tuple[str, ...] = (),
    kill_share: float = 0.8,
) -> Phase:
    """Import ``src`` into ``crm`` with ``kills`` SIGKILLs and a resume after each; return what was seen.

    ``url`` (default the 2007 endpoint) and ``extra`` flags choose the endpoint, batches and credentials.
    """
    name = "keyed" if keyed else "unkeyed"
    journal, rejects = work / f"{name}.sqlite", work / f"{name}.rejects.csv"
    argv = import_argv(src, url or crm.url, journal, rejects, keyed=keyed, workers=workers, extra=extra)
    phase = Phase(keyed=keyed, rows=0, lines=_source_lines(src))
    phase.rows = len(phase.lines)
    before = crm.stats()
    started = time.monotonic()
    seen: dict[int, str] = {}
    for threshold in thresholds(phase.rows, kills, random.Random(f"{seed}:{name}"), kill_share):
        landed, rc = _kill_at(argv + (["--resume"] if journal.exists() else []), journal, threshold, 600)
        states = journal_states(journal) or {}
        phase.lost += _regressions(seen, states)
        seen = states
        in_flight = [
            r[0] for r in _query(journal, "SELECT line FROM rows WHERE state = 'pending' AND attempts > 0")
        ]
        phase.kills.append(
            Kill(
                threshold=threshold, landed=landed, returncode=rc, counts=_counts(states), in_flight=in_flight
            )
        )
    out = subprocess.run(
        [*argv, "--resume"], capture_output=True, text=True, env=_env(), timeout=900, check=False
    )
    phase.elapsed_s = round(time.monotonic() - started, 1)
    phase.final_rc, phase.final_stderr = out.returncode, out.stderr[-2000:]
    phase.final = json.loads(out.stdout) if out.stdout.strip() else {}
    phase.states = journal_states(journal) or {}
    phase.lost += _regressions(seen, phase.states)
    phase.records = crm.records("account")
    # A run's own in-doubt rows carry the lost answer's error; those a resume settled carry the bare reason.
    phase.lost_on_wire = [
        r[0]
        for r in _query(
            journal, "SELECT line FROM rows WHERE state = 'in_doubt' AND error LIKE '%(check CRM): %'"
        )
    ]
    doubt = phase.final.get("in_doubt_file")
    if doubt:
        with open(doubt, encoding="utf-8", newline="") as fh:
            phase.in_doubt_file_lines = sorted(int(r["crmload_line"]) for r in csv.DictReader(fh))
    after = crm.stats()
    phase.faults = _delta(after["faults_by_kind"], before["faults_by_kind"])
    phase.requests_by_op = _delta(_creating(after), _creating(before))
    return phase


#: How many records a source row may have in the store, by its journal state. An in-doubt row was sent once
#: and its answer lost: it landed or it did not, and it is never sent again.
_ALLOWED_RECORDS = {"done": {1}, "in_doubt": {0, 1}, "rejected": {0}, "pending": {0, 1}}


def _records_per_line(phase: Phase) -> tuple[Counter[int], list[str]]:
    """How many stored records carry each source line's accountnumber; records matching no line."""
    line_of = {number: line for line, number in phase.lines.items()}
    per_line: Counter[int] = Counter()
    strays = []
    for rec in phase.records:
        line = line_of.get(str(rec.get("accountnumber")))
        if line is None:
            strays.append(str(rec.get("accountnumber")))
        else:
            per_line[line] += 1
    return per_line, strays


def _common(phase: Phase, kills: int) -> list[str]:
    """What must hold for either phase: every kill landed, nothing settled was lost, the equation holds."""
    bad = [f"journal regression: {x}" for x in phase.lost[:20]]
    missed = [k.threshold for k in phase.kills if not k.landed]
    if len(phase.kills) != kills or missed:
        bad.append(f"kills that did not land (the run had finished): thresholds {missed}")
    s = phase.final
    if not s:
        return [*bad, f"the final resume printed no JSON (exit {phase.final_rc}): {phase.final_stderr}"]
    if s["done"] + s["rejected"] + s["in_doubt"] != s["read"] or s["read"] != phase.rows or s["pending"]:
        bad.append(f"equation broken at the end: {_pick(s)} for {phase.rows} rows: {phase.final_stderr}")
    if _counts(phase.states) != {k: s[k] for k in ("pending", "done", "rejected", "in_doubt", "read")}:
        bad.append(f"journal {_counts(phase.states)} differs from the summary {_pick(s)}")
    if s["rejected"]:
        bad.append(f"{s['rejected']} rows rejected: no fault in the plan is a row's fault")
    for n, k in enumerate(phase.kills, 1):
        c = k.counts
        if c["done"] + c["rejected"] + c["in_doubt"] + c["pending"] != c["read"]:
            bad.append(f"after kill {n}: states do not add up: {c}")
    return bad


def _pick(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary.get(k) for k in ("read", "done", "rejected", "in_doubt", "pending", "exit_code")}


def audit(phase: Phase, kills: int) -> dict[str, Any]:
    """Compare the store with the journal, row by row. Returns the figures and a list of ``violations``."""
    bad = _common(phase, kills)
    per_line, strays = _records_per_line(phase)
    if strays:
        bad.append(f"{len(strays)} stored records match no source row, e.g. {strays[:5]}")
    duplicates = sum(n - 1 for n in per_line.values() if n > 1)
    in_doubt = [line for line, state in phase.states.items() if state == "in_doubt"]
    landed_in_doubt = sum(1 for line in in_doubt if per_line[line])
    resets = phase.faults.get("reset_after_commit", 0)
    others = sum(n for op, n in phase.requests_by_op.items() if op != "Create")
    wrong = [
        f"line {line} ({state}) has {per_line[line]} records"
        for line, state in sorted(phase.states.items())
        if per_line[line] not in _ALLOWED_RECORDS[state]
    ]
    if wrong:
        bad.append(f"{len(wrong)} rows with the wrong number of records: {', '.join(wrong[:10])}")
    if phase.keyed:
        if in_doubt or any(k.counts["in_doubt"] for k in phase.kills):
            bad.append("a keyed row was in doubt: an id makes every send idempotent")
        wrong_id = [
            r["accountnumber"]
            for r in phase.records
            if str(key_id("account", str(r["accountnumber"]))) != str(r.get("accountid"))
        ]
        if wrong_id:
            bad.append(f"{len(wrong_id)} records without their key's id, e.g. {wrong_id[:5]}")
    else:
        if len(phase.records) - phase.final.get("done", 0) != landed_in_doubt:
            bad.append(
                f"{len(phase.records)} records for {phase.final.get('done')} done rows and "
                f"{landed_in_doubt} in-doubt rows that landed"
            )
        # Every reset after commit on a Create landed a record whose answer was lost: that row is in doubt.
        if landed_in_doubt < resets - others:
            bad.append(
                f"{resets} resets after commit (on at most {others} non-Create requests), "
                f"but only {landed_in_doubt} in-doubt rows landed"
            )
        # Exactly the rows whose batch (or single call) lost its answer: on the wire, or to a kill.
        in_flight = set().union(*(k.in_flight for k in phase.kills))
        unexplained = set(in_doubt) ^ (set(phase.lost_on_wire) | in_flight)
        if unexplained:
            bad.append(f"{len(unexplained)} in-doubt rows not lost on the wire or at a kill (or the reverse)")
        if (phase.in_doubt_file_lines or []) != sorted(in_doubt):
            bad.append(
                f"the in-doubt file lists {len(phase.in_doubt_file_lines or [])} rows, "
                f"the journal {len(in_doubt)}"
            )
    return {
        "keyed": phase.keyed,
        "rows": phase.rows,
        "kills_planned": kills,
        "kills_landed": sum(k.landed for k in phase.kills),
        "resumes": len(phase.kills),  # every run after the first is a resume; the last one completes
        "final": _pick(phase.final),
        "records": len(phase.records),
        "rows_in_doubt": len(in_doubt),
        "in_doubt_landed": landed_in_doubt,
        "duplicates": duplicates,
        "in_doubt_lost_on_wire": len(phase.lost_on_wire),
        "lost_on_wire_unlanded": sum(1 for line in phase.lost_on_wire if not per_line[line]),
        "in_flight_at_kills": [len(k.in_flight) for k in phase.kills],
        "max_pending_at_a_kill": max((k.counts["pending"] for k in phase.kills), default=0),
        "mock_faults": phase.faults,
        "mock_requests_by_op": phase.requests_by_op,
        "elapsed_s": phase.elapsed_s,
        "kills": [asdict(k) for k in phase.kills],
        "violations": bad,
    }


def run_chaos(
    crm: MockCrm,
    work: Path,
    *,
    rows: int,
    kills: int,
    seed: int,
    workers: int,
    url: str | None = None,
    extra: tuple[str, ...] = (),
    plan: FaultPlan | None = None,
    kill_share: float = 0.8,
) -> list[dict[str, Any]]:
    """Both phases against ``crm`` (store reset between them); the audit of each.

    ``url``/``extra`` pick the endpoint and flags (default: 2007, single calls); ``plan`` the faults;
    the kills fall within the first ``kill_share`` of the rows.
    """
    src = work / "accounts.csv"
    subprocess.run(
        [PYTHON, str(ROOT / "scripts" / "gen_csv.py"), str(rows), str(src), "--seed", str(seed)], check=True
    )
    results = []
    for keyed in (True, False):
        crm.configure(plan or fault_plan(seed))
        crm.reset()
        phase = run_phase(
            crm,
            src,
            work,
            keyed=keyed,
            kills=kills,
            seed=seed,
            workers=workers,
            url=url,
            extra=extra,
            kill_share=kill_share,
        )
        results.append(audit(phase, kills))
    return results


def main(out_dir: Path, *, quick: bool = False, seed: int = 14) -> Path:
    """``python -m benchmarks --chaos``: the full run (20,000 rows, 20 kills per import) into chaos.json."""
    import tempfile

    from benchmarks import harness

    rows, kills, workers = (2000, 5, 4) if quick else (20_000, 20, 4)
    started = time.monotonic()
    with MockCrm(org="Contoso") as crm, tempfile.TemporaryDirectory(prefix="crmchaos-") as tmp:
        phases = run_chaos(crm, Path(tmp), rows=rows, kills=kills, seed=seed, workers=workers)
    doc = {
        "plan": fault_plan(seed).to_dict(),
        "rows": rows,
        "kills_per_import": kills,
        "workers": workers,
        "seed": seed,
        "phases": phases,
        "passed": not any(p["violations"] for p in phases),
    }
    path = harness.write_result(out_dir, "chaos", doc, quick=quick, started=started)
    for p in phases:
        name = "keyed" if p["keyed"] else "unkeyed"
        print(
            f"chaos {name}: {p['kills_landed']}/{kills} kills landed, {p['resumes']} resumes, "
            f"{p['records']} records, {p['rows_in_doubt']} rows in doubt ({p['in_doubt_landed']} landed), "
            f"{p['duplicates']} duplicates, {p['elapsed_s']} s; violations: {p['violations'] or 'none'}",
            flush=True,
        )
    return path

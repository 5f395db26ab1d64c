"""``python -m benchmarks [--quick] [--only NAME] [--out DIR] [--report-only]``: run, render the report."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks import harness, scenarios


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios (all by default), then render BENCHMARKS.md and the plots."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes: finishes in a few minutes")
    p.add_argument(
        "--only",
        action="append",
        choices=scenarios.scenario_names(),
        help="run only this scenario (repeatable)",
    )
    p.add_argument("--out", type=Path, default=harness.RESULTS, help="directory for the JSON results")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for the CI smoke test only")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions per contender (default 3)")
    p.add_argument("--no-netns", action="store_true", help="do not isolate runs in network namespaces")
    p.add_argument("--report-only", action="store_true", help="only render BENCHMARKS.md from existing JSON")
    p.add_argument("--no-report", action="store_true", help="do not render BENCHMARKS.md after running")
    p.add_argument(
        "--chaos", action="store_true", help="only the exactly-once chaos run (issue 14): chaos.json"
    )
    args = p.parse_args(argv)
    if args.chaos:
        from benchmarks import chaos

        print(f"wrote {chaos.main(args.out, quick=args.quick or args.smoke)}")
        return 0
    if not args.report_only:
        use_ns, reason = (False, "disabled with --no-netns") if args.no_netns else scenarios.netns_state()
        scratch = Path(tempfile.mkdtemp(prefix="crmbench-"))
        ctx = scenarios.Ctx(
            quick=args.quick or args.smoke,
            smoke=args.smoke,
            out_dir=args.out,
            use_ns=use_ns,
            ns_reason=reason,
            scratch=scratch,
            reps=args.reps,
        )
        started = time.monotonic()
        failed: list[str] = []
        try:
            for name in args.only or scenarios.scenario_names():
                try:
                    scenarios.run_scenario(name, ctx)
                except Exception:  # one broken scenario must not cost the others' results
                    failed.append(name)
                    traceback.print_exc()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print(
            f"benchmarks finished in {time.monotonic() - started:.0f} s; failed: {failed or 'none'}",
            flush=True,
        )
    if not args.no_report:
        from benchmarks import report

        path = report.render(args.out)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``crmload migrate PLAN.toml``: several related CSV files in dependency order, as one resumable run.

The plan (``crmload.plan.spec``) lists loads; lookups by key between them give the order (parents first),
self-references are sorted parent-first or set by an update pass, and a child of a failed parent row is
rejected with the parent's line. Every load is import's ``Loader`` with import's client (``import_cmd.
open_client``), journal, rejects files and summary; ``--dry-run`` validates everything and sends nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from crmload.cli import _flags, budget_opts, import_cmd, server_opts

__all__ = ["register", "run"]

EPILOG = """\
examples:
  python -m crmload migrate examples/plan/migrate.toml --dry-run
  python -m crmload migrate examples/plan/migrate.toml --url http://crm/XRMServices/2011/Organization.svc/web
  python -m crmload migrate migrate.toml --resume --json

exit codes: 0 all done; 3 finished with rejected or in-doubt rows; 1 fatal error; 2 usage error
"""


def register(subparsers: Any) -> None:
    """Add the ``migrate`` subcommand."""
    p = subparsers.add_parser(
        "migrate",
        help="load several related CSV files in dependency order (a plan)",
        description="Run a migration plan: loads ordered by their lookups (parents first), self-references "
        "sorted or set by an update pass, children of failed parents held back, one journal per load, one "
        "summary.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("plan", metavar="PLAN.toml", help="the plan: [target] and [[load]] tables")
    p.add_argument(
        "--url",
        type=_flags.url,
        default=os.environ.get("CRMLOAD_URL"),
        help="CRM URL (overrides the plan's [target] url; default $CRMLOAD_URL; none: an embedded mock CRM)",
    )
    p.add_argument("--endpoint", choices=("2007", "2011"), help="the endpoint when the URL does not say")
    p.add_argument("--org", default=os.environ.get("CRMLOAD_ORG"), help="organization (overrides the plan's)")
    p.add_argument(
        "--workers", type=_flags.positive_int, default=4, help="concurrent calls per load (default 4)"
    )
    p.add_argument("--rate", type=_flags.rate, metavar="N|auto|unlimited", help="calls per second, shared")
    p.add_argument("--batch-size", type=_flags.batch_size, default="auto", metavar="N|auto")
    p.add_argument("--batch-target-s", type=_flags.positive_float, default=3.0, metavar="S")
    p.add_argument("--timeout", type=_flags.timeout, metavar="S|CONNECT,READ")
    p.add_argument("--breaker", type=import_cmd._breaker_count, default=20, metavar="N")
    p.add_argument("--resume", action="store_true", help="continue the plan from its journals")
    p.add_argument("--restart", action="store_true", help="erase the plan's journals and begin again")
    p.add_argument("--state-dir", metavar="DIR", help="where the journals live (default PLAN.toml.crmload)")
    p.add_argument(
        "--max-levels",
        type=_flags.positive_int,
        default=16,
        metavar="N",
        help="sort a self-reference parent-first up to N levels deep; deeper or cyclic: an update pass",
    )
    p.add_argument(
        "--verify-lookups",
        action="store_true",
        help="reject a row whose lookup names a key that no row of the plan defines and CRM does not hold",
    )
    p.add_argument(
        "--force", action="store_true", help="let rejects files replace files crmload did not write"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="validate every file, map and reference; send nothing"
    )
    p.add_argument(
        "--no-preflight", action="store_true", help="skip the start-up check of URL, auth and entities"
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less logging")
    if import_cmd._auth_opts is not None:
        import_cmd._auth_opts.add_arguments(p)
    budget_opts.add_arguments(p)
    server_opts.add_arguments(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    """Run (or validate) a plan; return the exit code."""
    from crmload.cli import UsageError  # noqa: PLC0415 - the package imports this module
    from crmload.plan import Plan, analyse  # noqa: PLC0415 - lazy: --help stays fast

    if args.resume and args.restart:
        raise UsageError("--resume and --restart exclude each other")
    if not Path(args.plan).is_file():
        raise UsageError(f"no such file: {args.plan}")
    plan = Plan.load(args.plan)
    analysis = analyse(plan)
    args.endpoint = args.endpoint or plan.endpoint
    if args.dry_run:
        return _dry_run(args, analysis)
    with contextlib.ExitStack() as stack:
        url, org, rate = args.url or plan.url, args.org or plan.org, args.rate
        state = Path(args.state_dir) if args.state_dir else None
        if not url:
            url, org, rate = import_cmd._embedded_mock(args, stack, org, rate)
            if state is None:  # the embedded mock's records vanish with it: so does the state
                state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crmload-plan-")))
        if not org and import_cmd._dialect(args, url) == "2007":
            raise UsageError("--org is required for CRM 4.0 (or set $CRMLOAD_ORG, or org in [target])")
        client = import_cmd.open_client(args, stack, url, org or "", rate)
        if not args.no_preflight:
            for entity in dict.fromkeys(ld.entity for ld in plan.loads):
                client.preflight(entity)
        return _run(args, analysis, client, state)
    return 1  # pragma: no cover - the with block always returns


def _dry_run(args: argparse.Namespace, analysis: Any) -> int:
    from crmload.plan import PlanSummary, dry_run, prepare_data, unresolved  # noqa: PLC0415

    index = prepare_data(analysis, max_levels=args.max_levels)
    results = dry_run(analysis)
    count, rows = unresolved(analysis, index)
    summary = PlanSummary(
        plan=str(analysis.plan.path),
        order=analysis.describe(),
        results=results,
        dry_run=True,
        unresolved=count,
        unresolved_rows=rows,
    )
    print(summary.to_json() if args.json else summary.render(), flush=True)
    return summary.exit_code


def _run(args: argparse.Namespace, analysis: Any, client: Any, state: Path | None) -> int:
    from crmload.load.sizing import BatchPolicy  # noqa: PLC0415
    from crmload.load.summary import client_numbers, stats_delta  # noqa: PLC0415
    from crmload.plan import PlanRunner, PlanSummary, RunOptions, prepare_data  # noqa: PLC0415
    from crmload.plan.state import claim, fingerprint, state_dir  # noqa: PLC0415

    folder = state or state_dir(analysis.plan)
    resumed = claim(
        folder, fingerprint(analysis.plan, client.url, client.org), resume=args.resume, restart=args.restart
    )
    if args.resume and not resumed:
        import_cmd._say(args, "no plan state to resume: starting a new run")
    index = prepare_data(analysis, max_levels=args.max_levels)
    show_bar = sys.stderr.isatty() and not args.no_progress and getattr(args, "quiet", 0) <= 0
    options = RunOptions(
        workers=args.workers,
        batch_size=args.batch_size,
        batch_policy=BatchPolicy(target_s=args.batch_target_s),
        breaker=args.breaker,
        resume=resumed,
        restart=args.restart,
        force=args.force,
        max_levels=args.max_levels,
        progress=show_bar,
        verify_lookups=args.verify_lookups,
    )
    runner = PlanRunner(analysis, client, folder, options, index=index, resumed=resumed)
    before, started = client.stats(), time.monotonic()
    try:
        with import_cmd._stop_on_sigint(args, runner):
            results = runner.run()
    finally:
        runner.close()
    ran = {r.load for r in results if r.kind == "create"}
    summary = PlanSummary(
        plan=str(analysis.plan.path),
        order=analysis.describe(),
        results=results,
        duration_s=round(time.monotonic() - started, 3),
        client=client_numbers(stats_delta(client.stats(), before)),
        state=None if state is not None and args.state_dir is None else str(folder),
        not_run=[info.spec.label for info in analysis.loads if info.spec.index not in ran],
        stopped=runner.interrupted,
    )
    print(summary.to_json() if args.json else summary.render(), flush=True)
    if summary.fatal:
        print(f"crmload: error: {summary.fatal}; --resume continues the plan", file=sys.stderr)
    elif summary.interrupted:
        print("crmload: error: interrupted; --resume continues the plan", file=sys.stderr)
    code: int = summary.exit_code
    return code

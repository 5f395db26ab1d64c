"""``crmload report run.jsonl -o report.html``: draw a ``--metrics`` file as one self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

EPILOG = """\
examples:
  python -m crmload import accounts.csv --entity account --metrics run.jsonl
  python -m crmload report run.jsonl -o report.html
  python -m crmload report run.jsonl --run 1 -o first-run.html    # the first run of an appended file

charts need matplotlib: pip install 'crmload[report]' (without it the page has the rest)
exit codes: 0 written; 1 the file is not a crmload metrics file; 2 usage error
"""


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="turn an import's --metrics file into an HTML report with charts",
        description="Write one self-contained HTML page (no script, no network fetch) from a --metrics "
        "JSON-lines file: the summary and its equation, charts over time (records/s, latency p50/p95, "
        "retries/busy answers/throttles, rate limit and batch size) and the top reject reasons.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("metrics", metavar="RUN.jsonl", help="the file `import --metrics` wrote")
    p.add_argument("-o", "--output", metavar="REPORT.html", help="default: RUN.html beside the input")
    p.add_argument(
        "--run",
        type=int,
        default=0,
        metavar="N",
        help="which run of a file --metrics appended to several times: 1 the first, -1 the last (default)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less logging")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report; return the exit code."""
    from crmload.report import plotting, write_report  # noqa: PLC0415 - lazy: --help stays fast

    src = Path(args.metrics)
    if not src.is_file():
        from crmload.cli import UsageError  # noqa: PLC0415 - the package imports the commands

        raise UsageError(f"no such file: {src}")
    out = Path(args.output) if args.output else src.with_suffix(".html")
    index = -1 if args.run == 0 else (args.run - 1 if args.run > 0 else args.run)
    path = write_report(src, out, index)
    if args.quiet <= 0:
        charts = "" if plotting.available() else " (no charts: pip install 'crmload[report]')"
        print(f"crmload: report written to {path}{charts}", file=sys.stderr)
    return 0

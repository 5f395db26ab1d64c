"""``crmload status JOURNAL...``: a run's state from its journals; a sharded run's merged into one summary.

Journals are read-only (no lock), so a run may be watched while it goes on. The equation is printed per
journal and overall; for shards (``import --shard i/N``) it also checks that every shard is there once and
that their reads add up to the input (``crmload/load/status.py``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def _companion(path: str, given: set[str]) -> bool:
    """True for ``J-wal``, ``J-shm`` and ``J.lock`` when the journal ``J`` is given too."""
    return any(path.endswith(s) and path[: -len(s)] in given for s in ("-wal", "-shm", ".lock"))


EPILOG = """\
examples:
  python -m crmload status accounts.csv.crmload.sqlite
  python -m crmload status accounts.csv.shard-*-of-4.crmload.sqlite
  python -m crmload status --json /mnt/runs/host*/accounts.csv.shard-*.crmload.sqlite

exit codes: 0 all done; 3 every row settled, some rejected or in doubt; 1 rows pending, an input not read to
the end, a shard missing or journals of different runs; 2 usage error
"""


def register(subparsers: Any) -> None:
    """Add the ``status`` subcommand."""
    p = subparsers.add_parser(
        "status",
        help="the state of a run from its journal(s); merges the shards of a sharded run",
        description="Read one or more journals (read-only) and print each one's equation "
        "(done + rejected + in doubt == rows read) and the overall one. Given the journals of a sharded run "
        "(import --shard i/N), it checks that every shard is there once and that their reads add up to the "
        "input.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("journals", nargs="+", metavar="JOURNAL", help="a run's journal (.crmload.sqlite)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less logging")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the merged status; return its exit code."""
    from crmload.load.status import merge, read_status  # noqa: PLC0415 - lazy: --help stays fast

    paths = list(dict.fromkeys(args.journals))
    given = set(paths)
    # A shell glob (``run.shard-*``) also picks up each journal's SQLite and lock companions: skip those.
    paths = [p for p in paths if not _companion(p, given)]
    status = merge([read_status(path) for path in paths])
    print(status.to_json() if args.json else status.render(), flush=True)
    if status.problems and not args.json:
        print(f"crmload: {len(status.problems)} problem(s) across the journals; see above", file=sys.stderr)
    return status.exit_code

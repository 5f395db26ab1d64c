"""Command line: ``python -m crmload {import,mock,budget} ...``.

Each subcommand lives in its own module with ``register(subparsers)``; it sets ``func`` to a callable taking
the parsed ``argparse.Namespace`` and returning the exit code. Subcommand modules import heavy parts
lazily, so ``--help`` stays fast.

Exit codes: 0 ok, 1 fatal error, 2 usage error, 3 finished with rejected or in-doubt rows.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from crmload import __version__
from crmload.errors import CrmLoadError

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_REJECTS = 3

#: Subcommand modules, in the order ``--help`` lists them. A module missing here is skipped, not fatal.
_COMMANDS = ("crmload.cli.import_cmd", "crmload.cli.mock_cmd", "crmload.cli.budget_cmd")

log = logging.getLogger("crmload.cli")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="crmload",
        description="Migrate data into Microsoft Dynamics CRM over SOAP without exhausting ephemeral ports.",
        epilog="example: python -m crmload import examples/accounts.csv --entity account",
    )
    parser.add_argument("--version", action="version", version=f"crmload {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def configure_logging(verbosity: int) -> None:
    """Send crmload's log records to stderr at a level set by -v/-q."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    if verbosity < -1:
        level = logging.CRITICAL
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("crmload")
    root.handlers[:] = [h for h in root.handlers if isinstance(h, logging.NullHandler)]
    root.addHandler(handler)
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    verbosity = getattr(args, "verbose", 0) - getattr(args, "quiet", 0)
    configure_logging(verbosity)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("crmload: interrupted", file=sys.stderr)
        return EXIT_FATAL
    except CrmLoadError as exc:
        if verbosity > 0:
            log.exception("fatal error")
        print(f"crmload: error: {exc}", file=sys.stderr)
        return EXIT_FATAL

"""Command line: ``python -m crmload {import,migrate,export,verify,mock,budget,status} ...``.

Each subcommand lives in its own module with ``register(subparsers)``; it sets ``func`` to a callable taking
the parsed ``argparse.Namespace`` and returning the exit code. Subcommand modules import heavy parts
lazily, so ``--help`` stays fast.

Exit codes: 0 ok, 1 fatal error, 2 usage error, 3 finished with rejected or in-doubt rows, 130 interrupted.
Every error is one ``crmload: error: ...`` line on stderr, whatever raised it: a subcommand raises
``UsageError`` (exit 2) or any ``CrmLoadError`` (exit 1) and ``main`` reports it. With ``--json`` an error
exit still prints one JSON object on stdout (``fatal``, ``exit_code`` and the counts, zero when nothing ran).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from crmload import __version__
from crmload.errors import ConfigError, CrmLoadError

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_REJECTS = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class UsageError(ConfigError):
    """A flag or argument that is wrong on the command line itself (exit 2), not in what it names."""


class _ParseError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error goes up to ``main`` (which reports it once) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise _ParseError(self, message)


#: Subcommand modules, in the order ``--help`` lists them. A module missing here is skipped, not fatal.
_COMMANDS = (
    "crmload.cli.import_cmd",
    "crmload.cli.migrate_cmd",
    "crmload.cli.export_cmd",
    "crmload.cli.verify_cmd",
    "crmload.cli.mock_cmd",
    "crmload.cli.budget_cmd",
    "crmload.cli.status_cmd",
    "crmload.cli.report_cmd",
)

log = logging.getLogger("crmload.cli")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available subcommand registered."""
    parser = _Parser(
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
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _ParseError as exc:
        # Before parsing succeeds only the raw words can say whether JSON was asked for.
        hint = f"see '{exc.parser.prog} --help'"
        command = exc.parser.prog.partition(" ")[2] or None
        return _error(EXIT_USAGE, f"{exc}; {hint}", want_json="--json" in argv, command=command)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    verbosity = getattr(args, "verbose", 0) - getattr(args, "quiet", 0)
    configure_logging(verbosity)
    want_json = bool(getattr(args, "json", False))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return _error(EXIT_INTERRUPTED, "interrupted", want_json=want_json, command=args.command)
    except UsageError as exc:
        return _error(EXIT_USAGE, str(exc), want_json=want_json, command=args.command)
    except (CrmLoadError, OSError) as exc:
        # OSError: a file or socket the command was pointed at (a journal directory, a port to listen on).
        if verbosity > 0:
            log.exception("fatal error")
        return _error(EXIT_FATAL, _message(exc), want_json=want_json, command=args.command)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def _error(code: int, message: str, *, want_json: bool, command: str | None) -> int:
    """Report an error once on stderr, and with ``--json`` as one object on stdout; return ``code``."""
    print(f"crmload: error: {message}", file=sys.stderr, flush=True)
    if want_json:
        print(json.dumps(error_object(code, message, command=command), sort_keys=True), flush=True)
    return code


def error_object(code: int, message: str, *, command: str | None = None) -> dict[str, object]:
    """The ``--json`` object of a run that ended in an error before any summary: nothing was counted."""
    counts = dict.fromkeys(("read", "done", "rejected", "in_doubt", "pending"), 0)
    return {"command": command, "fatal": message, "exit_code": code, **counts, "balanced": True}

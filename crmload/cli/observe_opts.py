"""Watching a run: ``--progress-interval`` (plain lines when stderr is not a terminal), ``--metrics FILE``.

Shared by the commands that load: ``import`` now; ``migrate`` can add the same flags and give each load its
own ``Progress`` (a bar per load, plus an overall one summing their ``reading()``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from crmload.cli import _flags

__all__ = ["add_arguments", "build_progress"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--progress-interval``, ``--metrics`` and ``--metrics-interval``."""
    p.add_argument(
        "--progress-interval",
        type=_flags.positive_float,
        default=30.0,
        metavar="S",
        help="when stderr is not a terminal, a progress line there every S seconds (default 30)",
    )


def build_progress(args: argparse.Namespace, client: Any) -> Any:
    """A ``Progress``: a bar on a terminal, else a line every ``--progress-interval``; none with -q or
    ``--no-progress``."""
    from crmload.load import Progress  # noqa: PLC0415 - lazy: --help stays fast

    quiet = getattr(args, "quiet", 0) > 0 or getattr(args, "no_progress", False)
    tty = sys.stderr.isatty()
    stats = client.stats if client is not None else None
    return Progress(
        enabled=tty and not quiet,
        stats=stats,
        log_interval=None if quiet or tty else args.progress_interval,
    )

"""Watching a run: ``--progress-interval`` (plain lines when stderr is not a terminal), ``--metrics FILE``.

Shared by the commands that load: ``import`` now; ``migrate`` can add the same flags and give each load its
own ``Progress`` (a bar per load, plus an overall one summing their ``reading()``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from crmload.cli import _flags

__all__ = ["add_arguments", "build_progress", "run_watched", "start_metrics"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--progress-interval``, ``--metrics`` and ``--metrics-interval``."""
    p.add_argument(
        "--progress-interval",
        type=_flags.positive_float,
        default=30.0,
        metavar="S",
        help="when stderr is not a terminal, a progress line there every S seconds (default 30)",
    )
    p.add_argument(
        "--metrics",
        metavar="FILE.jsonl",
        help="append one JSON line per interval (rows, records/s, requests, retries, busy answers, waits, "
        "latency, rate limit, batch size), then the summary; `crmload report FILE.jsonl` draws it",
    )
    p.add_argument(
        "--metrics-interval",
        type=_flags.positive_float,
        default=5.0,
        metavar="S",
        help="seconds per --metrics line (default 5)",
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


def start_metrics(args: argparse.Namespace, progress: Any, client: Any, loader: Any, src: Path) -> Any:
    """A started ``MetricsRecorder`` for ``--metrics``, or None; call it just before ``loader.run``."""
    if not getattr(args, "metrics", None):
        return None
    import crmload  # noqa: PLC0415 - lazy: --help stays fast
    from crmload.load.metrics import MetricsRecorder  # noqa: PLC0415

    path = Path(args.metrics)
    if path.resolve() == src.resolve():
        from crmload.cli import UsageError  # noqa: PLC0415 - the package imports the commands

        raise UsageError("--metrics must not be the input file")
    recorder = MetricsRecorder(
        path,
        progress=progress,
        stats=client.stats if client is not None else None,
        batch_size=loader.sizer.size,
        interval=args.metrics_interval,
    )
    recorder.start(
        crmload=crmload.__version__,
        target=loader.target.describe(),
        entity=loader.entity,
        mode=loader.mode,
        file=src.name,
        file_bytes=src.stat().st_size,
        workers=args.workers,
        rate=args.rate,
        batch_size=str(args.batch_size),
        dry_run=bool(args.dry_run),
    )
    return recorder


def run_watched(  # noqa: PLR0917 - the import command's one step
    args: argparse.Namespace,
    loader: Any,
    source: Any,
    client: Any,
    src: Path,
    guard: contextlib.AbstractContextManager[None],
) -> Any:
    """``loader.run(source)`` inside ``guard`` (Ctrl-C handling), with ``--metrics`` around it; then close the
    loader. Returns the summary."""
    metrics = None
    try:
        metrics = start_metrics(args, loader.progress, client, loader, src)
        with guard:
            summary = loader.run(source)
        if metrics is not None:
            metrics.finish(summary.to_dict())
    finally:
        loader.close()
        if metrics is not None:
            metrics.close()
    return summary

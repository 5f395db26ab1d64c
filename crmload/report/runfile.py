"""Read a ``--metrics`` JSON-lines file into one ``Run``: its start line, intervals and summary.

A file may hold several runs (``--metrics`` appends): the last one is read unless ``index`` says otherwise.
A run still going (or killed) has no summary line; its totals then come from the intervals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmload.errors import ConfigError

__all__ = ["Run", "load_run"]


@dataclass(slots=True)
class Run:
    """One run of a metrics file."""

    start: dict[str, Any]
    intervals: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    runs_in_file: int = 1

    @property
    def summary(self) -> dict[str, Any]:
        """The run's summary (``--json``'s object), or {} when the run has not ended."""
        return dict(self.final.get("summary", {})) if self.final else {}

    @property
    def reasons(self) -> list[dict[str, Any]]:
        """Top reject reasons: ``[{"reason", "rows"}]``, most rows first."""
        return list(self.final.get("reasons", [])) if self.final else []

    def total(self, name: str) -> int:
        """The intervals' sum of one counter."""
        return sum(int(i.get(name) or 0) for i in self.intervals)

    def throttles_total(self) -> int | None:
        """Throttles over the run (facets added), or None when the client did not count them."""
        seen = [i["throttles"] for i in self.intervals if "throttles" in i]
        if not seen:
            return None
        return sum(sum(t.values()) if isinstance(t, dict) else int(t) for t in seen)


def load_run(path: str | Path, index: int = -1) -> Run:
    """The ``index``-th run (default: the last) of a metrics file; ``ConfigError`` naming a bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    runs: list[Run] = []
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == len(lines):
                break  # the last line of a run still being written
            raise ConfigError(f"{path}: line {n} is not JSON: {exc.msg}") from None
        _take(runs, obj, n, path)
    if not runs:
        raise ConfigError(f"{path}: no run in it (written by `crmload import --metrics`?)")
    try:
        run = runs[index]
    except IndexError:
        raise ConfigError(f"{path} holds {len(runs)} run(s), not run {index}") from None
    run.runs_in_file = len(runs)
    return run


def _take(runs: list[Run], obj: Any, n: int, path: Path) -> None:
    """File line ``n`` into ``runs``."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "start":
        runs.append(Run(start=obj))
    elif kind in ("interval", "summary"):
        if not runs:
            raise ConfigError(f"{path}: line {n} comes before any start line: not a crmload metrics file")
        if kind == "interval":
            runs[-1].intervals.append(obj)
        else:
            runs[-1].final = obj
    else:
        raise ConfigError(f"{path}: line {n} has no known type: not a crmload --metrics file")

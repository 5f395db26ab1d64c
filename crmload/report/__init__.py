"""``crmload report run.jsonl -o report.html``: a run's metrics stream as one self-contained HTML page.

The summary and its equation, charts over time (records/s; latency p50/p95; retries, busy answers and
throttles; the limiter's rate and the batch size) and the top reject reasons. Charts need matplotlib
(``pip install 'crmload[report]'``); without it the page has everything else and says so.

Example::

    >>> write_report("run.jsonl", "report.html")          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from crmload.report import plotting
from crmload.report.page import page
from crmload.report.runfile import Run, load_run

__all__ = ["Run", "load_run", "render", "write_report"]

NO_CHARTS = "Charts need matplotlib: pip install 'crmload[report]', then run crmload report again."


def render(run: Run, source: str = "") -> str:
    """The HTML page of ``run``."""
    if plotting.available():
        from crmload.report.charts import charts  # noqa: PLC0415 - imports matplotlib

        return page(run, charts(run), source=source)
    return page(run, [], charts_note=NO_CHARTS, source=source)


def write_report(metrics: str | Path, out: str | Path, index: int = -1) -> Path:
    """Read run ``index`` (default: the last) of the metrics file and write its report to ``out``."""
    run = load_run(metrics, index)
    path = Path(out)
    path.write_text(render(run, source=Path(metrics).name), encoding="utf-8")
    return path

"""The words of a progress report: one ``Reading`` of a run, rendered as a terminal bar or a plain log line.

Pure functions, no I/O and no clock: ``load/progress.py`` takes the readings and decides when to draw.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Reading", "bar_text", "eta_text", "log_text"]


@dataclass(frozen=True, slots=True)
class Reading:
    """What a run has done so far, as the progress line shows it.

    ``settled`` counts every row done, rejected or in doubt, an earlier run's (``--resume``) included;
    ``fraction`` is the share of the input behind them (None when the total is unknown); ``rate`` is rows
    settled per second lately, this run's only.
    """

    settled: int
    fraction: float | None
    rate: float
    rejected: int = 0
    in_doubt: int = 0
    retries: int = 0
    throttled: int = 0
    sockets: int | None = None

    @property
    def eta_s(self) -> float | None:
        """Seconds to the end at the current rate; None when the total or the rate is unknown."""
        if self.fraction is None or self.rate <= 0:
            return None
        if self.fraction >= 1:
            return 0.0
        if self.fraction <= 0 or self.settled <= 0:
            return None
        remaining_rows = self.settled * (1 - self.fraction) / self.fraction
        return remaining_rows / self.rate


def eta_text(seconds: float | None) -> str:
    """``00:07:12``; ``--:--:--`` when unknown; days as ``2d 03:00:00``."""
    if seconds is None:
        return "--:--:--"
    whole = int(seconds + 0.5)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def _figures(r: Reading) -> str:
    """``41 %, 812,344 rows, 2,931 rows/s, ETA 00:07:12`` (without the percentage when there is no total)."""
    rate = f"{r.rate:,.0f}" if r.rate >= 10 else f"{r.rate:,.1f}"
    text = f"{r.settled:,} rows, {rate} rows/s"
    if r.fraction is None:
        return text
    return f"{_percent(r.fraction)}, {text}, ETA {eta_text(r.eta_s)}"


def _percent(fraction: float) -> str:
    # Never "100 %" before the end: a rounding up would claim a run finished that is not.
    value = min(fraction, 1.0) * 100
    shown = int(value) if value < 100 else 100
    return f"{shown} %"


def _extras(r: Reading) -> str:
    parts = [f"{r.rejected:,} rejected"]
    if r.in_doubt:
        parts.append(f"{r.in_doubt:,} in doubt")
    parts += [f"{r.retries:,} retries", f"{r.throttled:,} throttled"]
    if r.sockets is not None:
        parts.append(f"{r.sockets:,} sockets")
    return ", ".join(parts)


def bar_text(r: Reading, width: int, *, unicode: bool = True) -> str:
    """One terminal line, at most ``width`` characters: a bar when the total is known, then the figures.

    A narrow terminal loses the counters of trouble first, then the picture, never the percentage and ETA.
    """
    figures, extras = _figures(r), _extras(r)
    bar = ""
    if r.fraction is not None:
        cells = 20
        filled = int(min(max(r.fraction, 0.0), 1.0) * cells)
        full, empty = ("\u2588", "\u2591") if unicode else ("#", "-")
        bar = f"[{full * filled}{empty * (cells - filled)}] "
    for line in (f"{bar}{figures} | {extras}", f"{bar}{figures}", figures):
        if len(line) <= width:
            return line
    return figures[:width]


def log_text(r: Reading) -> str:
    """The plain line written every interval when stderr is not a terminal (a cron log, CI, a scheduler)."""
    return f"progress: {_figures(r)}; {_extras(r)}"

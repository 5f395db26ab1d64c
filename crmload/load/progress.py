"""Live progress: thread-safe counters, a bar on a terminal, a plain line every interval elsewhere.

The reader reports rows read and the bytes of the input behind them (``read``), the workers report rows
settled (``add``). With a file, progress is bytes consumed against the file's size, labelled in rows: the
rows settled times the bytes per row read so far, so the file is never read twice to count its rows, and a
quoted field with newlines counts as the one row it is. ``--resume`` starts from the rows an earlier run
settled (``start(base=...)``).

On a terminal the bar is redrawn every half second from a thread of its own::

    [████████░░░░░░░░░░░░] 41 %, 812,344 rows, 2,931 rows/s, ETA 00:07:12 | 3 rejected, 5 retries, ...

When stderr is not a terminal (cron, CI, a scheduler) a plain line goes there every ``log_interval`` seconds
instead (``--progress-interval``), so a long run's log shows its pulse. ``stats`` returns the client's live
numbers (``retries``, ``sockets_opened``, ``busy_answers``: busy and throttling answers).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from crmload.load._progress_text import Reading, bar_text, log_text

__all__ = ["Progress", "reason_class"]

#: Seconds of history behind the rate (and so the ETA): long enough to smooth batches, short enough to follow
#: a server that slows down.
RATE_WINDOW_S = 30.0
#: Distinct reject reasons kept; later new ones are counted as "other reasons".
MAX_REASONS = 200

# A quoted value, unless it names the column (a reason's most useful word).
_QUOTED = re.compile(r"(columns? )?('[^']*'|\"[^\"]*\")")
_LINES = re.compile(r"\b(lines?) \d+(?:-\d+)?")
_GUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


def reason_class(reason: str) -> str:
    """A reject reason without its row's own values, so rows that failed alike count as one reason.

    Quoted values (not column names), line numbers and GUIDs are blanked:

    >>> reason_class("map: column 'revenue': 'abc' is not a number (line 7)")
    "map: column 'revenue': '…' is not a number (line N)"
    """
    text = _QUOTED.sub(_blank, reason.strip())
    text = _LINES.sub(lambda m: m.group(1) + " N", text)
    return _GUID.sub("{\u2026}", text)[:200]


def _blank(m: re.Match[str]) -> str:
    if m.group(1):
        return m.group(0)  # a column's name: kept
    quote = m.group(2)[0]
    return f"{quote}\u2026{quote}"


class Progress:
    """Counters for a run, with a bar on a terminal or periodic log lines.

    Args:
        enabled: draw a bar (the CLI passes ``stderr.isatty() and not --no-progress``).
        total: rows expected, when known without a file (a file's size is given to ``start``).
        stats: returns live client numbers (``retries``, ``sockets_opened``, ``busy_answers``).
        stream: where the bar or the lines go; stderr by default.
        log_interval: seconds between plain progress lines (None: none); ignored when ``enabled``.
        clock: monotonic seconds (injected in tests).
        tick: seconds between bar redraws.
    """

    def __init__(
        self,
        *,
        enabled: bool = False,
        total: int | None = None,
        stats: Callable[[], Mapping[str, Any]] | None = None,
        stream: TextIO | None = None,
        log_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        tick: float = 0.5,
    ) -> None:
        self.counts = {"done": 0, "rejected": 0, "in_doubt": 0}
        self.rows_read = 0
        self.reasons: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stats = stats
        self._stream = stream
        self._clock = clock
        self._bar = enabled
        self._log_interval = None if enabled else log_interval
        self._tick = tick
        self._total_rows = total
        self._size: int | None = None
        self._position: int | None = None
        self._base = 0
        self._started: float | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self._drawn = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the loader reports -----------------------------------------------------------------------------
    def start(self, *, size_bytes: int | None = None, base: int = 0) -> None:
        """Begin the run: the input's size in bytes (a file), rows an earlier run settled (``--resume``)."""
        with self._lock:
            if self._started is not None:
                return
            self._size = size_bytes if size_bytes and size_bytes > 0 else None
            self._base = base
            self._started = self._clock()
            self._samples.append((self._started, 0))
        if self._bar or self._log_interval:
            self._thread = threading.Thread(target=self._loop, name="crmload-progress", daemon=True)
            self._thread.start()

    def read(self, rows: int, position: int | None = None) -> None:
        """Count ``rows`` read from the input; ``position``: bytes of the input consumed so far."""
        with self._lock:
            self.rows_read += rows
            if position is not None:
                self._position = position

    def add(self, state: str, n: int = 1, reason: str | None = None) -> None:
        """Count ``n`` rows that ended in ``state``; a rejected row's ``reason`` is tallied by kind."""
        if self._started is None:
            self.start()
        with self._lock:
            self.counts[state] = self.counts.get(state, 0) + n
            if reason is not None:
                kind = reason_class(reason)
                if kind not in self.reasons and len(self.reasons) >= MAX_REASONS:
                    kind = "other reasons"
                self.reasons[kind] += n

    def snapshot(self) -> dict[str, Any]:
        """This run's counts: rows read, done, rejected, in doubt, and reject reasons by kind."""
        with self._lock:
            return {"read": self.rows_read, **self.counts, "reasons": dict(self.reasons)}

    # -- what it shows ---------------------------------------------------------------------------------------
    def reading(self) -> Reading:
        """The figures the bar and the log lines show, now."""
        now = self._clock()
        with self._lock:
            settled_now = sum(self.counts.values())
            total = self._base + settled_now
            fraction: float | None = None
            if self._size is not None and self._position is not None and self.rows_read:
                fraction = min(1.0, total * (self._position / self.rows_read) / self._size)
            elif self._total_rows:
                fraction = min(1.0, total / self._total_rows)
            self._samples.append((now, settled_now))
            while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
                self._samples.popleft()
            t0, s0 = self._samples[0]
            rejected, in_doubt = self.counts["rejected"], self.counts["in_doubt"]
        rate = (settled_now - s0) / (now - t0) if now > t0 else 0.0
        live = self._live()
        # Every busy or throttling answer; service-protection throttles are among them.
        throttled = live.get("busy_answers", 0)
        return Reading(
            settled=total,
            fraction=fraction,
            rate=rate,
            rejected=rejected,
            in_doubt=in_doubt,
            retries=int(live.get("retries", 0) or 0),
            throttled=int(throttled or 0),
            sockets=live.get("sockets_opened") if self._stats is not None else None,
        )

    def _live(self) -> Mapping[str, Any]:
        if self._stats is None:
            return {}
        try:
            return self._stats()
        except Exception:  # the bar must never stop a run
            return {}

    def _out(self) -> TextIO:
        return self._stream or sys.stderr

    def _loop(self) -> None:
        interval = self._tick if self._bar else float(self._log_interval or 30.0)
        while not self._stop.wait(interval):
            if self._bar:
                self._draw(final=False)
            else:
                self._log_line()

    def _draw(self, *, final: bool) -> None:
        with self._lock:
            settled = sum(self.counts.values())
            started = self._started or 0.0
        # The first frame waits for a settled row, so it has a rate and so an ETA (or for 2 s of nothing).
        if not (final or self._drawn or settled or self._clock() - started >= 2.0):
            return
        out = self._out()
        text = bar_text(self.reading(), _width(out) - 1, unicode=_utf(out))
        with contextlib.suppress(OSError, ValueError):
            out.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
            out.flush()
        self._drawn = True

    def _log_line(self) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError, ValueError):
            out = self._out()
            out.write(f"{stamp} crmload: {log_text(self.reading())}\n")
            out.flush()

    def close(self) -> None:
        """Stop redrawing; a bar gets its last frame and a line end."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        if self._bar and self._started is not None:
            self._bar = False
            self._draw(final=True)


def _width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 100
    return columns if columns > 20 else 100  # a terminal that reports no size (0 columns)


def _utf(stream: TextIO) -> bool:
    return str(getattr(stream, "encoding", "") or "").lower().replace("-", "").startswith("utf")

"""``--metrics run.jsonl``: one JSON object per interval while a run goes, then one with its summary.

Every interval line holds what happened *in that interval* (counters are differences of two cumulative
readings, so the intervals add up exactly to the run's totals), plus the state at its end (rate limit,
batch size). The stream is appended to, line-buffered (``tail -f`` shows each line whole) and holds no
secret: the target is the public URL the summary shows, and no row's values are written.

Lines, each with ``"type"``:
- ``start``: time stamp, crmload version, entity, mode, target, input file and size, interval;
- ``interval``: ``ts`` (UTC, ISO 8601), ``elapsed_s``, ``interval_s``; rows ``read``, ``done``, ``rejected``,
  ``in_doubt``; ``records_per_s``; ``calls``, ``requests``, ``sockets_opened``; ``retries``,
  ``retries_by_cause``; ``busy_answers`` (busy and throttling faults) and, when the client keeps a server
  budget (the Organization service), ``throttles`` by facet and ``throttle_wait_share``;
  ``limiter_wait_share`` and ``retry_after_wait_share`` (wall time held back / interval);
  ``latency_p50_ms``, ``latency_p95_ms`` (of the interval's requests); ``rate_limit``, ``batch_size``;
- ``summary``: the run's summary (what ``--json`` prints), ``totals`` (the intervals' sums), and the top
  reject ``reasons`` by kind.

Example::

    >>> rec = MetricsRecorder("run.jsonl", progress=progress, stats=client.stats)   # doctest: +SKIP
    >>> rec.start(entity="account"); summary = loader.run(source); rec.finish(summary.to_dict())
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from crmload import _latency_hist
from crmload.load.progress import Progress

__all__ = ["DEFAULT_METRICS_INTERVAL_S", "ROW_FIELDS", "MetricsRecorder"]

DEFAULT_METRICS_INTERVAL_S = 5.0
ROW_FIELDS = ("read", "done", "rejected", "in_doubt")
#: Client counters written as the interval's difference.
_COUNTERS = ("calls", "requests", "sockets_opened", "retries", "busy_answers")
#: Reject reasons kept in the summary line.
TOP_REASONS = 20


def _now_iso(wall: float) -> str:
    return (
        dt.datetime.fromtimestamp(wall, dt.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _num(stats: Mapping[str, Any], name: str) -> float:
    value = stats.get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _dict_delta(after: Any, before: Any) -> dict[str, int]:
    after = after if isinstance(after, Mapping) else {}
    before = before if isinstance(before, Mapping) else {}
    return {str(k): int(v) - int(before.get(k, 0)) for k, v in after.items() if isinstance(v, int)}


class MetricsRecorder:
    """Write a run's metrics stream to ``path`` from a thread of its own.

    Args:
        path: the JSON-lines file (appended to).
        progress: the run's ``Progress`` (rows read and settled, reject reasons).
        stats: the client's ``stats()`` (None for a dry run).
        batch_size: the batch size of the moment (the loader's sizer).
        interval: seconds between lines.
        clock, wall: monotonic and epoch seconds (injected in tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        progress: Progress,
        stats: Callable[[], Mapping[str, Any]] | None = None,
        batch_size: Callable[[], int] | None = None,
        interval: float = DEFAULT_METRICS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.progress = progress
        self.batch_size = batch_size
        self.interval = interval
        self._stats = stats
        self._clock, self._wall = clock, wall
        self._fh: IO[str] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = self._last_t = 0.0
        self._last: dict[str, Any] = {}
        self.totals: dict[str, Any] = {}

    # -- the run ---------------------------------------------------------------------------------------------
    def start(self, **header: Any) -> None:
        """Open the file, write the ``start`` line (``header`` added to it) and begin the intervals."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8", buffering=1)  # line-buffered: tail -f
        self._t0 = self._last_t = self._clock()
        self._last = self._reading()
        self.totals = dict.fromkeys((*ROW_FIELDS, *_COUNTERS), 0)
        self.totals["retries_by_cause"] = {}
        self._write({"type": "start", "ts": _now_iso(self._wall()), "interval_s": self.interval, **header})
        self._thread = threading.Thread(target=self._loop, name="crmload-metrics", daemon=True)
        self._thread.start()

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Write the last interval (to now) and the ``summary`` line; close the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._fh is None:
            return
        self._tick()
        reasons = sorted(self.progress.snapshot()["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
        line = {
            "type": "summary",
            "ts": _now_iso(self._wall()),
            "elapsed_s": round(self._clock() - self._t0, 3),
            "summary": dict(summary),
            "totals": self.totals,
            "reasons": [{"reason": r, "rows": n} for r, n in reasons[:TOP_REASONS]],
            "reasons_more": max(0, len(reasons) - TOP_REASONS),
        }
        self._write(line)
        self.close()

    def close(self) -> None:
        """Stop and close without a summary (a run that raised)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    # -- readings --------------------------------------------------------------------------------------------
    def _reading(self) -> dict[str, Any]:
        stats: Mapping[str, Any] = {}
        if self._stats is not None:
            with contextlib.suppress(Exception):  # metrics must never stop a run
                stats = self._stats()
        return {"rows": self.progress.snapshot(), "stats": stats}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._tick()

    def _tick(self) -> None:
        now = self._clock()
        reading = self._reading()
        line = self._interval(reading, self._last, max(now - self._last_t, 1e-9), now - self._t0)
        self._last, self._last_t = reading, now
        self._write(line)

    def _interval(
        self, now: Mapping[str, Any], before: Mapping[str, Any], span: float, elapsed: float
    ) -> dict[str, Any]:
        rows, rows0 = now["rows"], before["rows"]
        st, st0 = now["stats"], before["stats"]
        out: dict[str, Any] = {
            "type": "interval",
            "ts": _now_iso(self._wall()),
            "elapsed_s": round(elapsed, 3),
            "interval_s": round(span, 3),
        }
        for name in ROW_FIELDS:
            out[name] = int(rows.get(name, 0)) - int(rows0.get(name, 0))
        settled = out["done"] + out["rejected"] + out["in_doubt"]
        out["records_per_s"] = round(settled / span, 1)
        for name in _COUNTERS:
            out[name] = int(_num(st, name) - _num(st0, name))
        out["retries_by_cause"] = _dict_delta(st.get("retries_by_cause"), st0.get("retries_by_cause"))
        sb, sb0 = _server_budget(st), _server_budget(st0)
        if isinstance(sb.get("throttles"), Mapping):  # service-protection throttles, by facet
            out["throttles"] = _dict_delta(sb["throttles"], sb0.get("throttles"))
            out["throttle_wait_share"] = _share(sb, sb0, "throttle_wait_s", span)
        out["limiter_wait_share"] = _share(st, st0, "limiter_wait_wall_s", span)
        out["retry_after_wait_share"] = _share(st, st0, "retry_after_pause_s", span)
        hist = _latency_hist.subtract(_hist(st), _hist(st0))
        for q, name in ((0.5, "latency_p50_ms"), (0.95, "latency_p95_ms")):
            value = _latency_hist.percentile(hist, q)
            out[name] = None if value is None else round(value * 1000, 2)
        rate = st.get("current_rate")
        out["rate_limit"] = round(float(rate), 2) if isinstance(rate, (int, float)) else rate
        out["batch_size"] = self._batch()
        self._add_to_totals(out)
        return out

    def _add_to_totals(self, line: Mapping[str, Any]) -> None:
        for name in (*ROW_FIELDS, *_COUNTERS):
            self.totals[name] += line[name]
        for key in ("retries_by_cause", "throttles"):
            if key in line:
                into = self.totals.setdefault(key, {})
                for name, n in line[key].items():
                    into[name] = into.get(name, 0) + n

    def _batch(self) -> int | None:
        if self.batch_size is None:
            return None
        try:
            return int(self.batch_size())
        except Exception:
            return None

    def _write(self, obj: Mapping[str, Any]) -> None:
        text = json.dumps(obj, sort_keys=False, default=str, separators=(",", ":"))
        with self._lock:
            if self._fh is not None:
                self._fh.write(text + "\n")


def _server_budget(stats: Mapping[str, Any]) -> Mapping[str, Any]:
    sb = stats.get("server_budget")
    return sb if isinstance(sb, Mapping) else {}


def _hist(stats: Mapping[str, Any]) -> dict[int, int]:
    raw = stats.get("latency_histogram")
    if not isinstance(raw, Mapping):
        return {}
    return {int(k): int(v) for k, v in raw.items()}


def _share(st: Mapping[str, Any], st0: Mapping[str, Any], name: str, span: float) -> float:
    """Wall time held back in the interval over its length, 0..1."""
    return round(min(1.0, max(0.0, (_num(st, name) - _num(st0, name)) / span)), 4)

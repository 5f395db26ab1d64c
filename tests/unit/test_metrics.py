"""MetricsRecorder on a fake clock and scripted client stats: differences per interval, throttles by facet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crmload.load import Progress
from crmload.load.metrics import MetricsRecorder


def test_intervals_are_differences_and_throttles_by_facet_add_up(tmp_path: Path) -> None:
    now = [0.0]
    stats: dict[str, Any] = {
        "calls": 0,
        "requests": 0,
        "busy_answers": 0,
        "retries_by_cause": {"busy": 0},
        "limiter_wait_wall_s": 0.0,
        "current_rate": 100.0,
        "latency_histogram": {},
        "server_budget": {"throttles": {"requests": 0, "execution_time": 0}, "throttle_wait_s": 0.0},
    }
    progress = Progress(clock=lambda: now[0])
    rec = MetricsRecorder(
        tmp_path / "m.jsonl",
        progress=progress,
        stats=lambda: json.loads(json.dumps(stats)),
        interval=3600,
        clock=lambda: now[0],
        wall=lambda: 1_700_000_000.0,
        batch_size=lambda: 250,
    )
    rec.start(entity="account")
    for step in range(1, 4):
        now[0] = 10.0 * step
        progress.read(100)
        progress.add("done", 90)
        progress.add("rejected", 10, reason="map: column 'x': 'y' is bad")
        stats["calls"] += 5
        stats["requests"] += 6
        stats["busy_answers"] += step
        stats["retries_by_cause"]["busy"] += step
        stats["limiter_wait_wall_s"] += 2.5
        stats["latency_histogram"] = {"30": 5 * step}
        stats["server_budget"]["throttles"]["execution_time"] += step
        stats["server_budget"]["throttle_wait_s"] += 1.0
        rec._tick()  # what the recorder's thread does every interval
    rec.finish({"done": 270})
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [x["type"] for x in lines] == ["start", "interval", "interval", "interval", "interval", "summary"]
    first, last_tick = lines[1], lines[3]
    assert (first["read"], first["done"], first["rejected"], first["records_per_s"]) == (100, 90, 10, 10.0)
    assert (first["calls"], first["requests"], first["busy_answers"]) == (5, 6, 1)
    assert last_tick["throttles"] == {"requests": 0, "execution_time": 3}
    assert last_tick["limiter_wait_share"] == 0.25
    assert last_tick["throttle_wait_share"] == 0.1
    assert last_tick["batch_size"] == 250
    assert last_tick["rate_limit"] == 100.0
    assert lines[4]["done"] == 0  # the closing interval: nothing more happened
    totals = lines[-1]["totals"]
    assert totals["throttles"] == {"requests": 0, "execution_time": 6}
    assert totals["busy_answers"] == 6
    assert totals["retries_by_cause"] == {"busy": 6}
    assert (totals["done"], totals["rejected"]) == (270, 30)
    assert lines[-1]["reasons"] == [{"reason": "map: column 'x': '\u2026' is bad", "rows": 30}]
    assert lines[0]["ts"] == "2023-11-14T22:13:20.000Z"

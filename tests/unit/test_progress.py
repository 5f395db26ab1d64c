"""Progress against a total: the figures on a fake clock, the bar's and the log line's words, resume."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from crmload.load import CsvSource, Loader, Progress
from crmload.load._progress_text import Reading, bar_text, eta_text, log_text
from crmload.load.progress import reason_class


def _progress(now: list[float], **kwargs: object) -> Progress:
    return Progress(clock=lambda: now[0], **kwargs)  # type: ignore[arg-type]


def test_percent_is_bytes_behind_the_settled_rows_against_the_size_and_eta_follows_the_rate() -> None:
    now = [0.0]
    p = _progress(now)
    p.start(size_bytes=1000)
    p.read(10, 100)  # 10 bytes a row so far
    p.add("done", 20)
    p.add("rejected", 5, reason="map: column 'x': 'abc' is not a number")
    now[0] = 10.0
    r = p.reading()
    assert r.fraction == 0.25  # 25 rows x 10 bytes of 1000
    assert r.rate == 2.5  # 25 rows in 10 s
    assert r.eta_s == 30.0  # 75 rows to go at 2.5 rows/s
    text = log_text(r)
    assert text.startswith("progress: 25 %, 25 rows, 2.5 rows/s, ETA 00:00:30; 5 rejected")


def test_without_a_size_a_row_total_still_gives_a_percentage_and_without_either_none() -> None:
    now = [0.0]
    p = _progress(now, total=200)
    p.start()
    p.add("done", 50)
    now[0] = 5.0
    assert p.reading().fraction == 0.25
    q = _progress(now)
    q.start()
    q.add("done", 50)
    r = q.reading()
    assert r.fraction is None
    assert r.eta_s is None
    assert "%" not in bar_text(r, 200)
    assert "ETA" not in bar_text(r, 200)


def test_resumed_run_starts_at_the_rows_settled_before() -> None:
    now = [0.0]
    p = _progress(now)
    p.start(size_bytes=1000, base=60)
    p.read(100, 1000)  # the reader went through all 100 rows (60 of them skipped as settled)
    p.add("done", 10)
    now[0] = 2.0
    r = p.reading()
    assert r.settled == 70
    assert r.fraction == 0.7
    assert r.rate == 5.0  # this run's rows only
    assert r.eta_s is not None
    assert round(r.eta_s, 6) == 6.0


def test_bar_keeps_percentage_and_eta_on_a_narrow_terminal() -> None:
    r = Reading(settled=812_344, fraction=0.41, rate=2931.0, rejected=3, retries=5, throttled=1, sockets=4)
    wide = bar_text(r, 200)
    assert wide.startswith("[" + "\u2588" * 8 + "\u2591" * 12 + "] 41 %, 812,344 rows, 2,931 rows/s, ETA ")
    assert "3 rejected, 5 retries, 1 throttled, 4 sockets" in wide
    narrow = bar_text(r, 60)
    assert len(narrow) <= 60
    assert re.search(r"41 %, 812,344 rows, 2,931 rows/s, ETA \d\d:\d\d:\d\d", narrow)
    assert "#" in bar_text(r, 200, unicode=False)


def test_percentage_never_rounds_up_to_100_before_the_end() -> None:
    r = Reading(settled=99_999, fraction=0.99999, rate=100.0)
    assert log_text(r).startswith("progress: 99 %")
    assert eta_text(None) == "--:--:--"
    assert eta_text(3 * 86400 + 61) == "3d 00:01:01"


def test_reject_reasons_are_counted_by_kind() -> None:
    p = Progress()
    for value in ("abc", "x1", "zz"):
        p.add("rejected", reason=f"map: column 'revenue': '{value}' is not a number (line 12)")
    p.add("rejected", reason="send: InvalidArgument 0x80040203: bad")
    reasons = p.snapshot()["reasons"]
    assert reasons == {
        "map: column 'revenue': '\u2026' is not a number (line N)": 3,
        "send: InvalidArgument 0x80040203: bad": 1,  # a fault code names the reason: kept
    }
    assert reason_class("a 'b' c") == "a '\u2026' c"
    assert reason_class("line 5 and lines 7-9, id 1f0a4a3e-1111-2222-3333-444455556666") == (
        "line N and lines N, id {\u2026}"
    )


def test_log_lines_are_written_every_interval_when_not_a_terminal() -> None:
    stream = io.StringIO()
    p = Progress(log_interval=0.05, stream=stream)
    p.start(size_bytes=100)
    p.read(10, 100)
    p.add("done", 4)
    deadline = time.monotonic() + 30
    while stream.getvalue().count("\n") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    p.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2
    assert all(re.search(r"crmload: progress: 40 %, 4 rows, .* rows/s, ETA", line) for line in lines)


def test_loader_feeds_progress_bytes_of_the_file_and_the_resumed_base(tmp_path: Path) -> None:
    from tests.unit.test_engine import FakeClient

    src = tmp_path / "a.csv"
    src.write_text("code,name\n" + "".join(f"A-{i},Name {i}\n" for i in range(1, 101)), encoding="utf-8")
    journal = tmp_path / "j.sqlite"
    calls = [0]

    def fail_after_40(op: str, entity: str, attrs: object, id: object) -> Exception | None:
        from crmload.errors import AuthenticationError

        calls[0] += 1
        return AuthenticationError("refused") if calls[0] > 40 else None

    first = Loader(FakeClient(fail=fail_after_40), "account", key="code", journal=journal, workers=1)
    with CsvSource(src) as source:
        s1 = first.run(source)
    first.close()
    assert s1.done == 40
    assert s1.pending > 0
    progress = Progress()
    second = Loader(
        FakeClient(), "account", key="code", journal=journal, resume=True, progress=progress, workers=1
    )
    with CsvSource(src) as source:
        s2 = second.run(source)
    second.close()
    assert s2.done == 100
    r = progress.reading()
    assert sum(progress.counts.values()) == 60  # this run's rows
    assert r.settled == 100  # ... counted on from the 40 the first run settled
    assert r.fraction == 1.0  # every byte of the file read, every row settled
    assert progress.snapshot()["read"] == 100

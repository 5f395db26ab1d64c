"""Issue 15, acceptance 3: ``--metrics`` on a run with injected busy faults; the intervals add up exactly to
the final summary, and the busy answers to the mock's count of busy faults it sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crmload.cli import main
from crmload.mock import FaultPlan, MockCrm


def _accounts(path: Path, n: int, bad: tuple[int, ...] = ()) -> Path:
    lines = ["accountnumber,name,revenue,lastusedincampaign\n"]
    for i in range(1, n + 1):
        date = "2024-02-30" if i in bad else "2024-01-15"
        lines.append(f'A-{i:05d},"Secretive Name {i}, Ltd",{i}.50,{date}\n')
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_interval_counts_add_up_exactly_to_the_summary_under_busy_faults(
    tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str]
) -> None:
    crm.configure(FaultPlan(busy_rate=0.08, retry_after_s=0.02, seed=7))
    src = _accounts(tmp_path / "accounts.csv", 600, bad=(5, 77, 300))
    metrics = tmp_path / "run.jsonl"
    # 600 calls at 300/s take over a second however fast the machine: several 0.25 s intervals.
    args = ["import", str(src), "--entity", "account", "--key", "accountnumber", "--url", crm.url]
    args += ["--org", "Contoso", "--rate", "300", "--journal", str(tmp_path / "j.sqlite")]
    args += ["--metrics", str(metrics), "--metrics-interval", "0.25", "--json", "--no-progress"]
    code = main(args)
    out = json.loads(capsys.readouterr().out)
    assert code == 3  # three rows rejected
    lines = _lines(metrics)
    assert [ln["type"] for ln in (lines[0], lines[-1])] == ["start", "summary"]
    intervals = [ln for ln in lines if ln["type"] == "interval"]
    assert len(intervals) >= 2
    assert len(intervals) == len(lines) - 2
    final = lines[-1]
    assert final["summary"] == out  # the summary line is what --json printed

    def total(name: str) -> int:
        return sum(int(ln[name]) for ln in intervals)

    for name in ("read", "done", "rejected", "in_doubt"):
        assert total(name) == out[name], name
    client = out["client"]
    for name in ("calls", "requests", "sockets_opened", "retries"):
        assert total(name) == client[name], name
    busy_sent = crm.stats()["faults_by_kind"].get("busy", 0)
    assert busy_sent > 0
    assert total("busy_answers") == busy_sent
    causes: dict[str, int] = {}
    for ln in intervals:
        for cause, n in ln["retries_by_cause"].items():
            causes[cause] = causes.get(cause, 0) + n
    assert {k: v for k, v in causes.items() if v} == {
        k: v for k, v in client["retries_by_cause"].items() if v
    }
    assert causes["busy"] == busy_sent  # every busy answer was retried
    assert final["totals"]["done"] == out["done"]
    assert final["reasons"] == [
        {"reason": final["reasons"][0]["reason"], "rows": 3}
    ]  # three bad dates, one kind of reason
    for ln in intervals:
        assert ln["rate_limit"] == 300.0
        assert ln["batch_size"] == 1
        assert 0.0 <= ln["limiter_wait_share"] <= 1.0
        assert ln["ts"].endswith("Z")
    timed = [ln for ln in intervals if ln["requests"]]
    assert all(ln["latency_p95_ms"] >= ln["latency_p50_ms"] > 0 for ln in timed)
    assert "Secretive" not in metrics.read_text(encoding="utf-8")  # no row's values in the stream

"""Issue 15, acceptance 4 (page side): ``crmload report`` turns a ``--metrics`` file into one self-contained
HTML page with its four charts, the equation and the top reject reasons; without matplotlib it still writes
the rest; a run still going (no summary line, a half-written last line) is drawn from its intervals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crmload.cli import main
from crmload.mock import FaultPlan, MockCrm

pytest.importorskip("matplotlib", reason="the report's charts need matplotlib (crmload[report])")


def _accounts(path: Path, n: int, bad: tuple[int, ...]) -> Path:
    lines = ["accountnumber,name,revenue,lastusedincampaign\n"]
    for i in range(1, n + 1):
        date = "2024-02-30" if i in bad else "2024-01-15"
        lines.append(f"A-{i:05d},Name {i},{i}.50,{date}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def make_metrics(tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str]) -> Path:
    """A real run with busy faults and 3 bad dates, watched every 0.1 s."""
    crm.configure(FaultPlan(busy_rate=0.05, retry_after_s=0.02, seed=3))
    src = _accounts(tmp_path / "accounts.csv", 300, bad=(4, 40, 200))
    metrics = tmp_path / "run.jsonl"
    args = ["import", str(src), "--entity", "account", "--key", "accountnumber", "--url", crm.url]
    args += ["--org", "Contoso", "--rate", "400", "--journal", str(tmp_path / "j.sqlite")]
    args += ["--metrics", str(metrics), "--metrics-interval", "0.1", "--json", "--no-progress"]
    assert main(args) == 3
    capsys.readouterr()
    return metrics


def test_report_is_one_self_contained_page_with_four_charts(
    tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = make_metrics(tmp_path, crm, capsys)
    out = tmp_path / "report.html"
    assert main(["report", str(metrics), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/svg\+xml;base64,', page)
    assert len(images) == 4
    assert "297 done + 3 rejected + 0 in doubt == 300 rows read" in page
    assert "map: column &#x27;lastusedincampaign&#x27;" in page  # the reason names its column ...
    assert "2024-02-30" not in page  # ... not the row's value
    assert re.search(r'<td class="n">3</td>', page)
    # Nothing to fetch: no script, no stylesheet or image from elsewhere.
    assert "<script" not in page
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "@import" not in page
    assert "url(" not in page


def test_report_without_matplotlib_still_has_the_summary(
    tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmload.report import plotting

    metrics = make_metrics(tmp_path, crm, capsys)
    monkeypatch.setattr(plotting, "available", lambda: False)
    out = tmp_path / "report.html"
    assert main(["report", str(metrics), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "<img" not in page
    assert "pip install &#x27;crmload[report]&#x27;" in page
    assert "300 rows read" in page
    assert "no charts" in capsys.readouterr().err


def test_a_run_still_going_is_drawn_from_its_intervals(
    tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = make_metrics(tmp_path, crm, capsys)
    lines = metrics.read_text(encoding="utf-8").splitlines()
    intervals = [json.loads(line) for line in lines if '"type":"interval"' in line]
    going = tmp_path / "going.jsonl"
    going.write_text("\n".join(lines[:-1]) + '\n{"type":"interv', encoding="utf-8")  # no summary, half a line
    out = tmp_path / "going.html"
    assert main(["report", str(going), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "no summary yet" in page
    read = sum(i["read"] for i in intervals)
    assert f"of {read:,} rows read so far" in page
    assert page.count("<img") == 4


def test_a_file_that_is_not_a_metrics_stream_is_refused_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type":"start"}\nnot json\n{"type":"interval"}\n', encoding="utf-8")
    code = main(["report", str(bad), "-o", str(tmp_path / "x.html")])
    assert code != 0
    assert "line 2" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()

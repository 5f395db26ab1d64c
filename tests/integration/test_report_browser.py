"""Issue 15, acceptance 4 (browser side): the report of a real run loads in headless Chromium with every
chart drawn (non-zero natural size), no console error and no network fetch; a screenshot is taken.

Skips, saying why, when Chromium (Debian's ``chromium``; .ci/run installs it) or websocket-client is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crmload.cli import main
from crmload.mock import MockCrm
from tests.chromium import find_chromium, visit
from tests.integration.test_report import make_metrics

pytest.importorskip("matplotlib", reason="the report's charts need matplotlib (crmload[report])")
pytest.importorskip("websocket", reason="the browser test talks DevTools over websocket-client")
pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="no Chromium on this machine (apt-get install chromium; .ci/run does)"
)


def test_report_loads_in_headless_chromium_with_every_chart(
    tmp_path: Path, crm: MockCrm, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = make_metrics(tmp_path, crm, capsys)
    out = tmp_path / "report.html"
    assert main(["report", str(metrics), "-o", str(out)]) == 0
    seen = visit(out)
    assert seen.title.startswith("crmload run report: account (create)")
    assert len(seen.images) == 4
    for complete, width, height, alt in seen.images:
        assert complete, alt
        assert width > 0, alt
        assert height > 0, alt
    assert seen.errors == []
    assert seen.fetches == []
    assert seen.png.startswith(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "report.png").write_bytes(seen.png)

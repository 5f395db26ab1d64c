"""The inspection endpoints, the metadata loader, and ``python -m crmload mock`` as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crmload.errors import ConfigError
from crmload.metadata import load_metadata
from crmload.mock import MockCrm
from tests.mock.helpers import WS, admin, connect, dyn_entity, envelope, post, prop

REPO = Path(__file__).resolve().parents[2]
WHOAMI = envelope(f'<Execute xmlns="{WS}"><Request xsi:type="WhoAmIRequest" /></Execute>')


def test_http_stats_records_reset_and_faults(crm: MockCrm) -> None:
    conn = connect(crm)
    try:
        body = envelope(
            f'<Create xmlns="{WS}">{dyn_entity("account", prop("StringProperty", "name", "A"))}</Create>'
        )
        assert post(conn, "Create", body).status == 200
    finally:
        conn.close()
    status, stats = admin(crm, "GET", "/_mock/stats")
    assert status == 200
    assert stats["records_by_entity"] == {"account": 1}
    assert stats["requests_by_op"] == {"Create": 1}
    assert {"connections_accepted", "connections_open", "connections_peak", "faults_by_kind"} <= set(stats)
    status, records = admin(crm, "GET", "/_mock/records/account")
    assert [r["name"] for r in records] == ["A"]
    status, plan = admin(crm, "POST", "/_mock/faults", {"busy_rate": 1.0, "retry_after_s": 1})
    assert status == 200
    assert crm.faults.busy_rate == 1.0
    assert plan["retry_after_s"] == 1
    assert admin(crm, "POST", "/_mock/faults", {"busy_rate": 7})[0] == 400
    assert admin(crm, "POST", "/_mock/faults", {})[0] == 200
    assert crm.faults.busy_rate == 0.0
    assert admin(crm, "POST", "/_mock/reset")[0] == 200
    assert crm.records("account") == []
    assert crm.stats()["requests"] == 0
    assert admin(crm, "GET", "/_mock/nothing")[0] == 404


def test_url_and_base_url(crm: MockCrm) -> None:
    assert crm.url == f"http://127.0.0.1:{crm.port}/MSCRMServices/2007/CrmService.asmx"
    assert crm.base_url == f"http://127.0.0.1:{crm.port}"


def test_metadata_bundled_and_user_toml(tmp_path: Path) -> None:
    meta = load_metadata()
    assert meta.entity("account").primary_key == "accountid"
    assert meta.entity("account").attributes["name"] == "String"
    assert meta.entity("contact").attributes["parentcustomerid"] == "Customer"
    assert meta.entity("account").attributes["statecode"] == "State"
    extra = tmp_path / "extra.toml"
    extra.write_text(
        '[contact.attributes]\nnew_score = "CrmFloat"\n\n[new_region]\nattributes = { new_name = "String" }\n'
    )
    meta = load_metadata(extra)
    assert meta.entity("contact").attributes["new_score"] == "CrmFloat"
    assert meta.entity("new_region").primary_key == "new_regionid"
    assert meta.has("new_region")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"account": {"attributes": {"x": "Nonsense"}}}))
    with pytest.raises(ConfigError):
        load_metadata(bad)


def test_cli_help_documents_every_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crmload", "mock", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    for flag in (
        "--port",
        "--org",
        "--latency-ms",
        "--jitter-ms",
        "--busy-rate",
        "--retry-after",
        "--reset-before-commit-rate",
        "--reset-after-commit-rate",
        "--close-every",
        "--max-connections",
        "--first-request-cost-ms",
        "--busy-above-rate",
        "--seed",
        "--max-body-bytes",
        "--idle-timeout",
        "--user",
        "--metadata",
        "examples:",
    ):
        assert flag in out


def test_cli_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crmload",
            "mock",
            "--port",
            "0",
            "--org",
            "Contoso",
            "--busy-rate",
            "0",
            "--user",
            "DOM\\u:pw",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/MSCRMServices/2007/CrmService.asmx")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "pw" not in out + err.replace("crmload mock", "")

"""``python -m crmload mock`` with the Organization-service flags, as a subprocess, checked through HTTP:
--token, --max-batch-size, --no-integrity, --exec-ms-per-record, and the new stats in /_mock/stats."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from crmload.errors import ConfigError
from crmload.metadata import load_metadata
from crmload.mock.bearer import DEFAULT_USER, BearerAuth, parse_token_spec
from tests.mock.org_helpers import (
    batch_items,
    create_req,
    envelope,
    execute,
    execute_multiple,
    kv,
    post,
    ref,
    string,
)

REPO = Path(__file__).resolve().parents[2]
MISSING = "0badf00d-0000-0000-0000-000000000000"


def _stats(base: str) -> dict[str, object]:
    import http.client

    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", "/_mock/stats")
        return dict(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


def test_cli_organization_service_flags() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "crmload", "mock", "--port", "0", "--token", "alice=s3cret-a", "--token"]
    argv += ["s3cret-d", "--max-batch-size", "2", "--no-integrity", "--exec-ms-per-record", "1"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip().split("/MSCRMServices", 1)[0]
        crm = SimpleNamespace(base_url=base)
        dangling = kv("name", string("x")) + kv("parentaccountid", ref("account", MISSING))
        one = envelope(execute(create_req("account", dangling)))
        assert post(crm, "Execute", one).status == 401  # type: ignore[arg-type]
        assert post(crm, "Execute", one, token="s3cret-a").status == 200  # type: ignore[arg-type]
        assert post(crm, "Execute", one, token="s3cret-d").status == 200  # type: ignore[arg-type]
        items = [
            create_req("account", kv("name", string(f"b{n}")), element="l:OrganizationRequest")
            for n in range(3)
        ]
        big = envelope(execute_multiple(items, continue_on_error=True, return_responses=True))
        too_big = post(crm, "Execute", big, token="s3cret-a")  # type: ignore[arg-type]
        assert too_big.status == 500
        assert b":key>MaxBatchSize</" in too_big.body
        fits = envelope(execute_multiple(items[:2], continue_on_error=True, return_responses=True))
        assert len(batch_items(post(crm, "Execute", fits, token="s3cret-a"))) == 2  # type: ignore[arg-type]
        stats = _stats(base)
        assert stats["requests_by_dialect"] == {"2011": {"Execute:Create": 2, "Execute:ExecuteMultiple": 2}}
        assert stats["batch_sizes"] == {"2": 1}
        assert stats["items_by_op"] == {"Create": 4}
        assert stats["records_by_entity"] == {"account": 4}
        assert stats["faults_by_kind"] == {"bearer_401": 1}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "/XRMServices/2011/Organization.svc/web" in err
    assert "s3cret" not in out + err


def test_token_specs_and_identities() -> None:
    assert parse_token_spec("alice=abc") == ("abc", "alice")
    assert parse_token_spec("abc") == ("abc", DEFAULT_USER)
    assert parse_token_spec("bob=a=b==") == ("a=b==", "bob")
    auth = BearerAuth({"abc": "alice"}, resource="http://h/")
    assert auth.check("Bearer abc").user == "alice"
    assert auth.check("bearer  abc ").user == "alice"
    denied = auth.check("Basic abc")
    assert denied.user is None
    assert denied.headers[0][1].endswith("resource_id=http://h/")
    assert "abc" not in repr(auth)
    assert BearerAuth(None).check(None).user == DEFAULT_USER


def test_metadata_alternate_keys(tmp_path: Path) -> None:
    extra = tmp_path / "keys.toml"
    extra.write_text(
        '[account.keys]\nnumber = ["AccountNumber"]\n[contact]\nkeys = [["lastname", "firstname"]]\n'
    )
    meta = load_metadata(extra)
    assert dict(meta.entity("account").keys) == {"number": ("accountnumber",)}
    assert dict(meta.entity("contact").keys) == {"lastname_firstname": ("lastname", "firstname")}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"account": {"keys": {"k": ["no_such_attribute"]}}}))
    with pytest.raises(ConfigError, match="no_such_attribute"):
        load_metadata(bad)

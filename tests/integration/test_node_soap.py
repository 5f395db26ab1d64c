"""A third-party SOAP stack against the mock (issue 14): node-soap with the real CRM 4.0 WSDL.

node-soap builds its messages from the WSDL, not from our codec, so this checks that the mock answers what
another client sends and that its answers parse in another client. Skips when ``node`` or the npm package
is absent (``npm install --prefix tests/node``, which ``.ci/run`` does).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from crmload.mock import MockCrm

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
NAME = "node & Kraków 東京"


@pytest.fixture
def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "soap" / "package.json").is_file():
        pytest.skip("node-soap is not installed (npm install --prefix tests/node)")
    return exe


def test_node_soap_whoami_create_retrieve_round_trip(node: str, crm: MockCrm, shared_reference: Path) -> None:
    wsdl = shared_reference / "crm-wsdl" / "crm40-CrmService-2007.wsdl"
    done = subprocess.run(
        [node, str(NODE_DIR / "soap_client.js"), str(wsdl), crm.url, "Contoso", NAME],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    who = out["who"]["Response"]
    assert who["attributes"]["xsi:type"] == "WhoAmIResponse"
    uuid.UUID(who["UserId"])
    assert out["retrieved"]["RetrieveResult"]["name"] == NAME
    [record] = crm.records("account")
    assert (record["accountid"], record["name"]) == (out["id"], NAME)
    assert crm.stats()["requests_by_op"] == {"Execute": 1, "Create": 1, "Retrieve": 1}

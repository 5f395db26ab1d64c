"""ClientCredentials with real MSAL against the mock's token authority over verified HTTPS (a trustme CA).

Counted, never timed: token requests in the authority's stats, 401s in the mock's faults, records in its
store.
Expiry is driven by one fake clock shared by the client's cache and the mock's token check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from crmload.auth import ClientCredentials
from crmload.client import CrmClient
from crmload.errors import TokenError
from crmload.mock import MockCrm

pytest.importorskip("msal")

REPO = Path(__file__).resolve().parents[2]
TENANT = "contoso.onmicrosoft.com"
CLIENT = "11111111-2222-3333-4444-555555555555"
SECRET = "Az-LEAKCANARY-client-secret-3Qp"


class FakeClock:
    """Seconds that move only when the test says so; shared by the client's cache and the mock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 1000.0

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def azure_crm(crm_factory: Callable[..., MockCrm], mock_ca: Any) -> MockCrm:
    return crm_factory(tls=mock_ca.server_context, clients={CLIENT: SECRET}, tenants=[TENANT])


def credentials(crm: MockCrm, mock_ca: Any, secret: str = SECRET, **kw: Any) -> ClientCredentials:
    kw.setdefault("authority", crm.base_url)
    kw.setdefault("verify", mock_ca.bundle)
    return ClientCredentials(kw.pop("tenant", TENANT), kw.pop("client_id", CLIENT), secret, **kw)


def client(crm: MockCrm, mock_ca: Any, auth: ClientCredentials, workers: int = 1) -> CrmClient:
    return CrmClient(crm.url2011, auth=auth, verify=mock_ca.bundle, rate="unlimited", workers=workers)


def test_one_token_serves_every_call_of_every_worker(azure_crm: MockCrm, mock_ca: Any) -> None:
    auth = credentials(azure_crm, mock_ca)
    with client(azure_crm, mock_ca, auth, workers=4) as crm, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: crm.create("account", {"name": f"acct {i}"}), range(40)))
    stats = azure_crm.stats()
    assert stats["records_by_entity"]["account"] == 40
    assert stats["token"]["token_requests"] == 1
    assert stats["token"]["tokens_issued"] == 1
    assert stats["requests_by_user"] == {CLIENT: 40}  # the token's identity is the client id
    assert auth.stats() == {"token_fetches": 1}
    assert auth.scope == azure_crm.base_url + "/.default"  # derived from the CRM URL


def test_short_lived_tokens_are_refreshed_before_they_expire(
    crm_factory: Callable[..., MockCrm], mock_ca: Any
) -> None:
    clock = FakeClock()
    crm = crm_factory(
        tls=mock_ca.server_context,
        clients={CLIENT: SECRET},
        tenants=[TENANT],
        token_lifetime_s=60,
        clock=clock,
    )
    auth = credentials(crm, mock_ca, clock=clock)
    with client(crm, mock_ca, auth) as c:
        for step in range(13):  # 0 .. 120 s of fake time, one call every 10 s
            c.create("account", {"name": f"at {step * 10} s"})
            clock.advance(10)
    stats = crm.stats()
    assert stats["records_by_entity"]["account"] == 13
    # Refreshed at half the 60 s lifetime (30, 60, 90, 120 s): 1 + 4 fetches, and never a 401.
    assert stats["token"]["token_requests"] == 5
    assert stats["faults_by_kind"].get("bearer_401", 0) == 0


def test_default_margin_refreshes_a_long_token_once_five_minutes_before_expiry(
    crm_factory: Callable[..., MockCrm], mock_ca: Any
) -> None:
    clock = FakeClock()
    crm = crm_factory(
        tls=mock_ca.server_context, clients={CLIENT: SECRET}, token_lifetime_s=3600, clock=clock
    )
    auth = credentials(crm, mock_ca, clock=clock)
    with client(crm, mock_ca, auth) as c:
        c.create("account", {"name": "first"})
        clock.advance(3299)
        c.create("account", {"name": "at 3299 s"})
        assert crm.stats()["token"]["token_requests"] == 1
        clock.advance(1)
        c.create("account", {"name": "at 3300 s"})
    assert crm.stats()["token"]["token_requests"] == 2


def test_a_token_refused_mid_run_is_replaced_once_and_the_request_resent(
    azure_crm: MockCrm, mock_ca: Any
) -> None:
    auth = credentials(azure_crm, mock_ca)
    with client(azure_crm, mock_ca, auth, workers=4) as crm, ThreadPoolExecutor(4) as pool:
        crm.create("account", {"name": "before"})
        assert azure_crm.bearer.expire() == 1  # the server now refuses the cached, unexpired token
        list(pool.map(lambda i: crm.create("account", {"name": f"after {i}"}), range(12)))
    stats = azure_crm.stats()
    assert stats["records_by_entity"]["account"] == 13  # every create landed once: a 401 is never applied
    assert stats["token"]["token_requests"] == 2  # one new token for all the workers that met the 401
    assert 1 <= stats["faults_by_kind"]["bearer_401"] <= 4


@pytest.mark.parametrize(
    ("kwargs", "cause", "words"),
    [
        ({"secret": "wrong-secret-value"}, "secret", f"client secret of application {CLIENT} was refused"),
        ({"tenant": "fabrikam.onmicrosoft.com"}, "tenant", "tenant fabrikam.onmicrosoft.com was not found"),
        ({"client_id": "unknown-app"}, "client", "application unknown-app is not known"),
        ({"authority": "https://127.0.0.1:9"}, "unreachable", "cannot reach the authority"),
        ({"verify": True}, "tls", "TLS with the authority"),
    ],
)
def test_token_failures_name_their_cause_and_send_nothing(
    azure_crm: MockCrm, mock_ca: Any, kwargs: dict[str, Any], cause: str, words: str
) -> None:
    auth = credentials(azure_crm, mock_ca, **kwargs)
    with client(azure_crm, mock_ca, auth) as crm, pytest.raises(TokenError) as info:
        crm.create("account", {"name": "never"})
    assert info.value.cause == cause
    assert words in info.value.message
    assert SECRET not in str(info.value)
    stats = azure_crm.stats()
    assert stats["records_by_entity"].get("account", 0) == 0
    assert stats["requests"] == 0  # no SOAP request reached the Organization service
    assert stats["token"]["token_requests"] <= 1  # refused once, not retried


def _import(crm: MockCrm, mock_ca: Any, tmp_path: Path, *extra: str, secret: str | None = SECRET) -> Any:
    csv = tmp_path / "accounts.csv"
    lines = (REPO / "examples" / "accounts.csv").read_text(encoding="utf-8").splitlines()[:31]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CRMLOAD_CLIENT_SECRET"}
    env["PYTHONPATH"] = str(REPO)
    if secret is not None:
        env["CRMLOAD_CLIENT_SECRET"] = secret
    argv = [
        sys.executable, "-m", "crmload", "import", str(csv), "--entity", "account", "--url", crm.url2011,
        "--org", "Contoso", "--workers", "4", "--rate", "unlimited", "--no-progress", "--json",
        "--auth", "client-credentials", "--tenant", TENANT, "--client-id", CLIENT,
        "--authority", crm.base_url, "--ca-bundle", mock_ca.bundle, *extra,
    ]  # fmt: skip
    return subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_import_with_client_credentials(azure_crm: MockCrm, mock_ca: Any, tmp_path: Path) -> None:
    proc = _import(azure_crm, mock_ca, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    stats = azure_crm.stats()
    assert stats["records_by_entity"]["account"] == summary["done"] > 0
    assert stats["token"]["token_requests"] == 1  # preflight and every worker share one token
    assert set(stats["requests_by_user"]) == {CLIENT}


def test_cli_wrong_secret_fails_fast_with_exit_1_naming_the_cause(
    azure_crm: MockCrm, mock_ca: Any, tmp_path: Path
) -> None:
    wrong = "Wr0ng-LEAKCANARY-client-secret"
    proc = _import(azure_crm, mock_ca, tmp_path, secret=wrong)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("crmload: error:")]
    assert len(errors) == 1, proc.stderr
    assert "no access token" in errors[0]
    assert f"client secret of application {CLIENT} was refused" in errors[0]
    assert wrong not in proc.stderr + proc.stdout
    assert json.loads(proc.stdout)["exit_code"] == 1
    stats = azure_crm.stats()
    assert stats["token"]["token_requests"] == 1
    assert stats["requests"] == 0
    assert not list(tmp_path.glob("*.sqlite"))  # the preflight failed before a journal was opened


def test_cli_without_the_secret_variable_names_it(azure_crm: MockCrm, mock_ca: Any, tmp_path: Path) -> None:
    proc = _import(azure_crm, mock_ca, tmp_path, secret=None)
    assert proc.returncode == 1
    assert "CRMLOAD_CLIENT_SECRET" in proc.stderr
    assert azure_crm.stats()["token"]["token_requests"] == 0


def test_mock_cli_serves_https_and_the_token_authority(mock_ca: Any) -> None:
    import requests

    argv = [sys.executable, "-m", "crmload", "mock", "--port", "0", "--tls-cert", mock_ca.cert_pem]
    argv += ["--tls-key", mock_ca.key_pem, "--client", f"{CLIENT}={SECRET}", "--tenant", TENANT]
    argv += ["--token-lifetime", "120"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("https://127.0.0.1:")
        base = url.split("/MSCRMServices", 1)[0]
        discovery = f"{base}/{TENANT}/v2.0/.well-known/openid-configuration"
        conf = requests.get(discovery, verify=mock_ca.bundle, timeout=10)
        assert conf.json()["token_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/token"
        form = {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET}
        form["scope"] = f"{base}/.default"
        token = requests.post(conf.json()["token_endpoint"], data=form, verify=mock_ca.bundle, timeout=10)
        assert token.status_code == 200
        assert token.json()["expires_in"] == 120
        stats = requests.get(f"{base}/_mock/stats", verify=mock_ca.bundle, timeout=10).json()
        assert stats["token"]["tokens_issued"] == 1
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert SECRET not in err

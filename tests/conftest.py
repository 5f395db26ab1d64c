"""Shared pytest fixtures: a real mock CRM 4.0 server on 127.0.0.1.

Fixtures:
    mock_crm (session): one ``crmload.mock.MockCrm(org="Contoso")`` listening on 127.0.0.1:0 for the whole
    run.
        Use it through ``crm`` unless you really want state shared across tests.
    crm (function): the same server, reset before the test (store, stats, fault plan cleared). Use ``crm.url``
        (the full CrmService.asmx URL), ``crm.stats()``, ``crm.records("account")``,
        ``crm.configure(FaultPlan(...))``.
    crm_factory (function): ``crm_factory(**kwargs) -> MockCrm`` starts a private server with other options
        (e.g. ``users=``, ``metadata=``, ``faults=``, ``idle_timeout_s=``); every one is stopped after the
        test.
    mock_ca (session): a ``MockCA`` from ``trustme``: ``server_context`` (for ``MockCrm(tls=...)``, a
        certificate for 127.0.0.1) and ``bundle`` (the CA's PEM path, for ``verify=`` and ``--ca-bundle``).
    shared_reference (function): Path of ``shared/reference`` beside the repository (CI puts ``shared/``
    next to
        the clone); skips the test when it is absent.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crmload.mock import MockCrm

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mock_crm() -> Iterator[MockCrm]:
    """One mock CRM server for the whole session."""
    with MockCrm(org="Contoso") as server:
        yield server


@pytest.fixture
def crm(mock_crm: MockCrm) -> MockCrm:
    """The session's mock CRM, with store, stats and fault plan reset for this test."""
    mock_crm.configure(None)
    mock_crm.reset()
    return mock_crm


@pytest.fixture
def crm_factory() -> Iterator[Callable[..., MockCrm]]:
    """Start private mock servers with custom options; all are stopped when the test ends."""
    started: list[MockCrm] = []

    def make(**kwargs: Any) -> MockCrm:
        server = MockCrm(**kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def shared_reference() -> Path:
    """``shared/reference`` beside the repository; the test is skipped when it is not there."""
    for candidate in (REPO.parent / "shared" / "reference", REPO.parent.parent / "shared" / "reference"):
        if candidate.is_dir():
            return candidate
    pytest.skip("shared/reference is not beside the repository")
    raise AssertionError  # unreachable; pytest.skip raises


@dataclass(frozen=True)
class MockCA:
    """A throwaway CA the mock's HTTPS certificate chains to; clients trust it through ``bundle`` only."""

    server_context: ssl.SSLContext
    bundle: str
    cert_pem: str
    key_pem: str


@pytest.fixture(scope="session")
def mock_ca(tmp_path_factory: pytest.TempPathFactory) -> MockCA:
    """A ``trustme`` CA and a server certificate for 127.0.0.1 (TLS stays verified in tests)."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    root = tmp_path_factory.mktemp("test-ca")
    bundle, cert_pem, key_pem = root / "ca.pem", root / "server.pem", root / "server.key"
    ca.cert_pem.write_to_path(str(bundle))
    cert.private_key_pem.write_to_path(str(key_pem))
    cert_pem.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return MockCA(ctx, str(bundle), str(cert_pem), str(key_pem))

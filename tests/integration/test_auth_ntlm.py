"""NTLM against the mock's real acceptor: a handshake per connection, pinned per worker, fail fast."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from crmload.auth import Negotiate, Ntlm
from crmload.budget import PortBudget
from crmload.client import CrmClient
from crmload.errors import AuthenticationError, CrmLoadError
from crmload.mock import MockCrm
from crmload.mock.faults import FaultPlan

USER = "CONTOSO\\alice"
PASSWORD = "Tr0ub4dor&3-ntlm"
#: A generous budget: these tests count sockets; they do not exercise the guard's waiting.
BUDGET = PortBudget(ports=60000, time_wait_s=1.0)


def client(crm: MockCrm, auth: Any, workers: int = 8) -> CrmClient:
    return CrmClient(crm.url, org="Contoso", workers=workers, rate="unlimited", budget=BUDGET, auth=auth)


def create_many(c: CrmClient, n: int, workers: int) -> list[Any]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda i: c.create("account", {"name": f"acct {i}"}), range(n)))


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(500):  # bounded poll on a server-side count, not a timing assertion
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def ntlm_crm(crm_factory: Callable[..., MockCrm]) -> Callable[..., MockCrm]:
    def make(**kwargs: Any) -> MockCrm:
        return crm_factory(users={USER: PASSWORD}, **kwargs)

    return make


def test_2000_creates_8_workers_one_handshake_per_connection(ntlm_crm: Callable[..., MockCrm]) -> None:
    crm = ntlm_crm()
    auth = Ntlm("contoso\\ALICE", PASSWORD)
    with client(crm, auth) as c:
        create_many(c, 2000, 8)
        sockets = c.stats()["sockets_opened"]
    stats = crm.stats()
    assert stats["records_by_entity"]["account"] == 2000
    assert stats["auth"]["handshakes"] == sockets == stats["connections_accepted"]
    assert sockets <= 8
    assert stats["auth"]["handshake_failures"] == 0
    assert stats["requests"] == 2000  # the handshake's body-less first legs never reach CRM
    assert auth.stats()["handshakes"] == sockets


def test_close_every_100_handshakes_equal_connections(ntlm_crm: Callable[..., MockCrm]) -> None:
    crm = ntlm_crm(faults=FaultPlan(close_every=100))
    auth = Ntlm(USER, PASSWORD)
    with client(crm, auth) as c:
        create_many(c, 2000, 8)
        sockets = c.stats()["sockets_opened"]
    stats = crm.stats()
    assert stats["records_by_entity"]["account"] == 2000
    assert stats["faults_by_kind"]["close_every"] >= 12
    assert stats["auth"]["handshakes"] == stats["connections_accepted"] == sockets
    assert stats["auth"]["handshake_failures"] == 0
    # After a Connection: close the next request starts with the body-less leg: no body is sent to be refused.
    assert stats["auth"]["anonymous"] <= 8


def test_wrong_password_fails_fast_from_every_worker(ntlm_crm: Callable[..., MockCrm]) -> None:
    crm = ntlm_crm()
    auth = Ntlm(USER, "not-the-password")
    errors: list[BaseException] = []
    with client(crm, auth) as c:

        def one(i: int) -> None:
            try:
                c.create("account", {"name": f"x{i}"})
            except CrmLoadError as exc:
                errors.append(exc)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(40)))
    assert len(errors) == 40
    assert all(isinstance(e, AuthenticationError) for e in errors)
    assert "not-the-password" not in "".join(str(e) + repr(e) for e in errors)
    stats = crm.stats()
    assert stats["auth"]["challenges"] <= 3
    assert stats["auth"]["handshakes"] == 0
    assert stats["records_by_entity"].get("account", 0) == 0


def test_idle_close_by_server_reauthenticates_with_a_bodyless_leg(ntlm_crm: Callable[..., MockCrm]) -> None:
    crm = ntlm_crm(idle_timeout_s=0.2)
    with client(crm, Ntlm(USER, PASSWORD), workers=1) as c:
        c.create("account", {"name": "before"})
        anonymous = crm.stats()["auth"]["anonymous"]
        wait_until(lambda: crm.stats()["connections_open"] == 0, "the mock to close the idle connection")
        c.create("account", {"name": "after"})
        sockets = c.stats()["sockets_opened"]
    stats = crm.stats()
    assert sockets == stats["connections_accepted"] == stats["auth"]["handshakes"] == 2
    assert stats["auth"]["anonymous"] == anonymous  # the closed socket was noticed before sending
    assert stats["records_by_entity"]["account"] == 2


def test_persist_single_request_authenticates_every_request_on_one_connection(
    ntlm_crm: Callable[..., MockCrm],
) -> None:
    crm = ntlm_crm(auth_persist_single_request=True)
    with client(crm, Ntlm(USER, PASSWORD), workers=1) as c:
        for i in range(20):
            c.create("account", {"name": f"p{i}"})
        sockets = c.stats()["sockets_opened"]
    stats = crm.stats()
    assert sockets == stats["connections_accepted"] == 1
    assert stats["auth"]["handshakes"] == 20
    assert stats["records_by_entity"]["account"] == 20
    # The mid-stream 401 is seen once; after that every request starts with the body-less leg.
    assert stats["auth"]["anonymous"] <= 2


def test_negotiate_wrapping_ntlm(ntlm_crm: Callable[..., MockCrm]) -> None:
    crm = ntlm_crm()
    with client(crm, Negotiate(USER, PASSWORD), workers=2) as c:
        create_many(c, 50, 2)
        sockets = c.stats()["sockets_opened"]
    assert crm.stats()["auth"]["handshakes"] == sockets <= 2


def test_plain_requests_session_without_the_pinning_seam(ntlm_crm: Callable[..., MockCrm]) -> None:
    crm = ntlm_crm()
    with requests.Session() as s:
        s.auth = Ntlm(USER, PASSWORD)
        for _ in range(3):
            r = s.post(crm.url, data=b"<not-soap/>", headers={"Content-Type": "text/xml"})
            assert r.status_code != 401
    assert crm.stats()["auth"]["handshakes"] == 1
    assert crm.stats()["connections_accepted"] == 1

"""Acceptance 4: retry semantics against the real mock, one test each, with injected time (no real waits)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from crmload.client import CrmClient
from crmload.errors import DuplicateRecord, ResponseLostError
from crmload.mock import FaultPlan, MockCrm
from crmload.retry import RetryPolicy
from crmload.throttle import RateLimit

#: The type of the ``vclock`` fixture (tests/integration/conftest.py); conftest is not importable by name.
VirtualClock = Any

POLICY = RetryPolicy(max_attempts=5, jitter=False, backoff_base_s=0.5)


def _client(url: str, vclock: VirtualClock, **kwargs: Any) -> CrmClient:
    kwargs.setdefault("retry", POLICY)
    kwargs.setdefault("rate", RateLimit.unlimited())
    return CrmClient(url, org="Contoso", clock=vclock.clock, sleep=vclock.sleep, **kwargs)


def _on_first_sleep(vclock: VirtualClock, action: Callable[[], None]) -> None:
    """Run ``action`` (e.g. clear the fault plan) when the client first sleeps: before its first retry."""
    base = vclock.sleep
    done: list[bool] = []

    def sleep(seconds: float) -> None:
        if not done:
            done.append(True)
            action()
        base(seconds)

    vclock.sleep = sleep  # type: ignore[method-assign]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connect_error_is_retried_until_the_server_appears(
    crm_factory: Callable[..., MockCrm], vclock: VirtualClock
) -> None:
    port = _free_port()
    servers: list[MockCrm] = []
    _on_first_sleep(vclock, lambda: servers.append(crm_factory(port=port)))
    url = f"http://127.0.0.1:{port}/MSCRMServices/2007/CrmService.asmx"
    with _client(url, vclock) as client:
        new_id = client.create("account", {"name": "after refusal"})
        stats = client.stats()
    assert [r["name"] for r in servers[0].records("account")] == ["after refusal"]
    assert isinstance(new_id, uuid.UUID)
    assert stats["retries_by_cause"]["connect"] == 1
    assert vclock.sleeps[0] == POLICY.backoff_base_s
    # The refused attempt went through the guard too: two attempts, one socket.
    assert stats["connect_attempts"] == 2
    assert stats["sockets_opened"] == servers[0].stats()["connections_accepted"] == 1


def test_reset_after_commit_on_keyed_create_returns_the_id_and_one_record(
    crm: MockCrm, vclock: VirtualClock
) -> None:
    crm.configure(FaultPlan(reset_after_commit_rate=1.0))
    _on_first_sleep(vclock, lambda: crm.configure(None))
    key = uuid.uuid5(uuid.NAMESPACE_URL, "account/reset-after-commit")
    with _client(crm.url, vclock) as client:
        assert client.create("account", {"name": "once"}, id=key) == key
        stats = client.stats()
    assert [r["accountid"] for r in crm.records("account")] == [str(key)]
    assert stats["retries_by_cause"]["response_lost"] == 1
    assert stats["keyed_creates_confirmed"] == 1
    assert crm.stats()["faults_by_kind"]["reset_after_commit"] == 1


def test_keyed_create_duplicate_on_first_answer_is_raised(crm: MockCrm, vclock: VirtualClock) -> None:
    key = uuid.uuid4()
    with _client(crm.url, vclock) as client:
        client.create("account", {"name": "first"}, id=key)
        with pytest.raises(DuplicateRecord):
            client.create("account", {"name": "second"}, id=key)
    assert len(crm.records("account")) == 1


def test_reset_after_commit_on_unkeyed_create_raises_response_lost_and_never_resends(
    crm: MockCrm, vclock: VirtualClock
) -> None:
    crm.configure(FaultPlan(reset_after_commit_rate=1.0))
    with _client(crm.url, vclock) as client, pytest.raises(ResponseLostError) as info:
        client.create("account", {"name": "maybe"})
    assert info.value.maybe_applied
    assert len(crm.records("account")) == 1
    assert crm.stats()["requests_by_op"]["Create"] == 1
    assert vclock.sleeps == []


def test_busy_with_retry_after_two_seconds_sleeps_two_seconds(crm: MockCrm, vclock: VirtualClock) -> None:
    crm.configure(FaultPlan(busy_rate=1.0, retry_after_s=2))
    _on_first_sleep(vclock, lambda: crm.configure(None))
    with _client(crm.url, vclock) as client:
        client.create("account", {"name": "patient"})
        stats = client.stats()
    assert vclock.sleeps == [2.0]
    assert stats["retries_by_cause"]["busy"] == 1
    assert stats["retry_after_pauses"] == 1
    assert len(crm.records("account")) == 1

"""Keep-alive accounting and one test per injected fault kind, each checked in the mock's stats."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable

import pytest

from crmload.mock import FaultPlan, MockCrm
from tests.mock.helpers import WS, connect, dyn_entity, envelope, post, prop

N = 20
WHOAMI = envelope(f'<Execute xmlns="{WS}"><Request xsi:type="WhoAmIRequest" /></Execute>')
CREATE = envelope(
    f'<Create xmlns="{WS}">{dyn_entity("account", prop("StringProperty", "name", "x"))}</Create>'
)


def test_keep_alive_uses_one_connection(crm: MockCrm) -> None:
    conn = connect(crm)
    try:
        for _ in range(N):
            assert post(conn, "Execute", WHOAMI).status == 200
    finally:
        conn.close()
    stats = crm.stats()
    assert stats["connections_accepted"] == 1
    assert stats["requests"] == N


def test_close_every_one_means_one_connection_per_request(crm: MockCrm) -> None:
    crm.configure(FaultPlan(close_every=1))
    conn = connect(crm)  # http.client reconnects by itself after "Connection: close"
    try:
        for _ in range(N):
            r = post(conn, "Execute", WHOAMI)
            assert r.status == 200
            assert r.headers["connection"] == "close"
    finally:
        conn.close()
    stats = crm.stats()
    assert stats["connections_accepted"] == N
    assert stats["faults_by_kind"] == {"close_every": N}


def test_close_every_three(crm: MockCrm) -> None:
    crm.configure(FaultPlan(close_every=3))
    conn = connect(crm)
    try:
        closes = [post(conn, "Execute", WHOAMI).headers.get("connection") for _ in range(9)]
    finally:
        conn.close()
    assert closes == [None, None, "close"] * 3
    assert crm.stats()["connections_accepted"] == 3


def test_busy_rate_answers_503_with_retry_after(crm: MockCrm) -> None:
    crm.configure(FaultPlan(busy_rate=1.0, retry_after_s=2))
    conn = connect(crm)
    try:
        for _ in range(3):
            r = post(conn, "Create", CREATE)
            assert r.status == 503
            assert r.headers["retry-after"] == "2"
    finally:
        conn.close()
    stats = crm.stats()
    assert stats["faults_by_kind"] == {"busy": 3}
    assert stats["connections_accepted"] == 1  # a busy answer keeps the connection
    assert crm.records("account") == []


def test_busy_rate_is_seeded_and_partial(crm: MockCrm) -> None:
    def run() -> list[int]:
        crm.configure(FaultPlan(busy_rate=0.5, seed=42))
        conn = connect(crm)
        try:
            return [post(conn, "Execute", WHOAMI).status for _ in range(N)]
        finally:
            conn.close()

    first, second = run(), run()
    assert first == second
    assert 0 < first.count(503) < N


def test_busy_above_rate(crm: MockCrm) -> None:
    crm.configure(FaultPlan(busy_above_rate=0.5))  # even one request in the last second is over 0.5/s
    conn = connect(crm)
    try:
        assert post(conn, "Execute", WHOAMI).status == 503
    finally:
        conn.close()
    assert crm.stats()["faults_by_kind"] == {"busy_above_rate": 1}


def _expect_reset(crm: MockCrm) -> None:
    conn = connect(crm)
    try:
        with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
            post(conn, "Create", CREATE)
    finally:
        conn.close()


def test_reset_before_commit_leaves_store_empty(crm: MockCrm) -> None:
    crm.configure(FaultPlan(reset_before_commit_rate=1.0))
    _expect_reset(crm)
    assert crm.records("account") == []
    assert crm.stats()["faults_by_kind"] == {"reset_before_commit": 1}


def test_reset_after_commit_keeps_the_record(crm: MockCrm) -> None:
    crm.configure(FaultPlan(reset_after_commit_rate=1.0))
    _expect_reset(crm)
    assert len(crm.records("account")) == 1
    assert crm.stats()["faults_by_kind"] == {"reset_after_commit": 1}


def test_max_connections(crm_factory: Callable[..., MockCrm]) -> None:
    # A server of its own: the shared one may still count connections an earlier test has just closed.
    crm = crm_factory(faults=FaultPlan(max_connections=1))
    first, second = connect(crm), connect(crm)
    try:
        assert post(first, "Execute", WHOAMI).status == 200
        r = post(second, "Execute", WHOAMI)
        assert r.status == 503
        assert r.headers["connection"] == "close"
        assert post(first, "Execute", WHOAMI).status == 200
    finally:
        first.close()
        second.close()
    assert crm.stats()["faults_by_kind"] == {"max_connections": 1}


def test_latency_jitter_and_first_request_cost(crm_factory: Callable[..., MockCrm]) -> None:
    sleeps: list[float] = []
    plan = FaultPlan(latency_ms=20, jitter_ms=10, first_request_cost_ms=50, seed=3)
    server = crm_factory(faults=plan, sleep=sleeps.append, clock=lambda: 0.0)  # frozen: sleeps are exact
    conn = connect(server)
    try:
        for _ in range(4):
            assert post(conn, "Execute", WHOAMI).status == 200
    finally:
        conn.close()
    assert sleeps[0] == 0.05  # the first request's handshake cost, then latency + jitter per request
    latencies = sleeps[1:]
    assert len(latencies) == 4
    assert all(0.020 <= s <= 0.030 for s in latencies)
    assert len(set(latencies)) > 1
    assert server.stats()["faults_by_kind"] == {"first_request_cost": 1, "latency": 4}


def test_idle_connections_are_closed(crm_factory: Callable[..., MockCrm]) -> None:
    server = crm_factory(idle_timeout_s=0.2)
    conn = connect(server)
    try:
        assert post(conn, "Execute", WHOAMI).status == 200
        deadline = time.monotonic() + 10
        while server.stats()["connections_open"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.stats()["connections_open"] == 0
        assert server.stats()["connections_accepted"] == 1
    finally:
        conn.close()


def test_invalid_plans_are_refused() -> None:
    from crmload.errors import ConfigError

    with pytest.raises(ConfigError):
        FaultPlan(busy_rate=1.5)
    with pytest.raises(ConfigError):
        FaultPlan(close_every=-1)
    with pytest.raises(ConfigError):
        FaultPlan.from_dict({"nope": 1})

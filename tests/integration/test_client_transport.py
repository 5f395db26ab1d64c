"""The transport on a real socket: errors mapped by phase, keep-alive counted, pinned sessions per thread."""

from __future__ import annotations

import errno
import socket
import threading

import pytest

from crmload.errors import ConnectError, ResponseLostError
from crmload.mock import FaultPlan, MockCrm
from crmload.soap.codec2007 import Codec2007
from crmload.transport import PoolLimits, Timeout, Transport

CODEC = Codec2007("Contoso")
BODY = CODEC.build_who_am_i()
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": CODEC.soap_action("WhoAmI")}


class CountingGuard:
    def __init__(self) -> None:
        self.calls = 0

    def acquire(self) -> float:
        self.calls += 1
        return 0.0


def test_refused_connect_is_a_connect_error_with_its_errno() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    guard = CountingGuard()
    with Transport(f"http://127.0.0.1:{port}/x", guard=guard) as t, pytest.raises(ConnectError) as info:
        t.post(BODY, HEADERS)
    assert info.value.errno == errno.ECONNREFUSED
    assert guard.calls == 1
    assert t.stats()["connect_failures"] == 1


def test_reset_after_send_is_response_lost(crm: MockCrm) -> None:
    crm.configure(FaultPlan(reset_before_commit_rate=1.0))
    with Transport(crm.url, guard=CountingGuard()) as t, pytest.raises(ResponseLostError):
        t.post(BODY, HEADERS)


def test_read_timeout_is_response_lost(crm: MockCrm) -> None:
    crm.configure(FaultPlan(latency_ms=300))
    with (
        Transport(crm.url, guard=CountingGuard(), timeout=Timeout(read_s=0.05)) as t,
        pytest.raises(ResponseLostError),
    ):
        t.post(BODY, HEADERS)


def test_keep_alive_one_socket_many_posts(crm: MockCrm) -> None:
    guard = CountingGuard()
    with Transport(crm.url, guard=guard) as t:
        for _ in range(50):
            assert t.post(BODY, HEADERS).status == 200
        stats = t.stats()
    assert stats["sockets_opened"] == guard.calls == crm.stats()["connections_accepted"] == 1
    assert stats["requests"] == 50


def test_pinned_connections_one_socket_per_thread(crm: MockCrm) -> None:
    guard = CountingGuard()
    with Transport(crm.url, workers=3, guard=guard, limits=PoolLimits(pin_connections=True)) as t:

        def work() -> None:
            for _ in range(20):
                t.post(BODY, HEADERS)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        stats = t.stats()
    assert stats["sessions"] == 3
    assert stats["sockets_opened"] == crm.stats()["connections_accepted"] == 3
    assert stats["requests"] == 60


# Both send paths of the transport (direct to the urllib3 pool, and through Session.post) behave alike.


@pytest.mark.parametrize("direct", [True, False])
def test_both_paths_reuse_one_counted_socket(crm: MockCrm, direct: bool) -> None:
    guard = CountingGuard()
    with Transport(crm.url, guard=guard, direct=direct) as t:
        replies = [t.post(BODY, HEADERS) for _ in range(30)]
        stats = t.stats()
    assert {r.status for r in replies} == {200}
    assert all(b"WhoAmIResponse" in r.body for r in replies)
    assert stats["sockets_opened"] == guard.calls == crm.stats()["connections_accepted"] == 1
    assert crm.stats()["requests_by_op"] == {"Execute": 30}


@pytest.mark.parametrize("direct", [True, False])
def test_both_paths_count_and_guard_every_new_socket_when_keep_alive_breaks(
    crm: MockCrm, direct: bool
) -> None:
    crm.configure(FaultPlan(close_every=1))
    guard = CountingGuard()
    with Transport(crm.url, guard=guard, direct=direct) as t:
        for _ in range(10):
            assert t.post(BODY, HEADERS).status == 200
        stats = t.stats()
    assert stats["sockets_opened"] == guard.calls == crm.stats()["connections_accepted"] == 10


@pytest.mark.parametrize("direct", [True, False])
def test_both_paths_map_a_reset_after_send(crm: MockCrm, direct: bool) -> None:
    crm.configure(FaultPlan(reset_before_commit_rate=1.0))
    with Transport(crm.url, guard=CountingGuard(), direct=direct) as t, pytest.raises(ResponseLostError):
        t.post(BODY, HEADERS)


def test_direct_path_steps_aside_for_auth_and_proxies(crm: MockCrm) -> None:
    with Transport(crm.url, guard=CountingGuard(), auth=("u", "p")) as t:
        assert t._direct is None
    with Transport(crm.url, guard=CountingGuard(), proxies={"http": "http://127.0.0.1:9"}) as t:
        assert t._direct is None
    with Transport(crm.url, guard=CountingGuard()) as t:
        assert t._direct is not None

"""Both send paths of the transport (direct to the urllib3 pool, and through Session.post) behave alike."""

from __future__ import annotations

import pytest

from crmload.errors import ResponseLostError
from crmload.mock import FaultPlan, MockCrm
from crmload.soap.codec2007 import Codec2007
from crmload.transport import Transport

CODEC = Codec2007("Contoso")
BODY = CODEC.build_who_am_i()
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": CODEC.soap_action("WhoAmI")}


class CountingGuard:
    def __init__(self) -> None:
        self.calls = 0

    def acquire(self) -> float:
        self.calls += 1
        return 0.0


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

"""Acceptance 2 and 3 (namespace half): the real port wall, in a Linux network namespace with 100 ports.

Each scenario runs in a fresh namespace (TIME_WAIT is per namespace) with ``ip_local_port_range`` 40000-40099
and ``tcp_tw_reuse=0``; the mock listens inside it on port 8080, outside the ephemeral range.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from netns_helper import WALL_SYSCTLS, Netns

pytestmark = [pytest.mark.netns, pytest.mark.usefixtures("netns_ok")]

CONTROL = """
import json, requests
from crmload.mock import MockCrm
from crmload.soap.codec2007 import Codec2007

codec = Codec2007("Contoso")
body = codec.build_who_am_i()
headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": codec.soap_action("WhoAmI")}
failed_at = err = None
with MockCrm(port=8080) as mock:
    for call in range(1, 1001):
        try:
            requests.post(mock.url, data=body, headers=headers, timeout=10).close()
        except requests.ConnectionError as exc:
            failed_at, cause = call, exc
            while cause is not None and getattr(cause, "errno", None) is None:
                cause = getattr(cause, "reason", None) or cause.__cause__ or cause.__context__
            err = getattr(cause, "errno", None)
            break
    accepted = mock.stats()["connections_accepted"]
print(json.dumps({"failed_at": failed_at, "errno": err, "accepted": accepted}))
"""

LOAD = """
import json
from concurrent.futures import ThreadPoolExecutor
from crmload.budget import PortBudget
from crmload.client import CrmClient
from crmload.mock import FaultPlan, MockCrm
from crmload.throttle import RateLimit

N, WORKERS = {records}, 4
errors = []
with MockCrm(port=8080, faults=FaultPlan(close_every={close_every})) as mock:
    budget, rate = {budget}, RateLimit.unlimited()
    with CrmClient(mock.url, org="Contoso", workers=WORKERS, rate=rate, budget=budget) as crm:
        def work(first):
            for i in range(first, N, WORKERS):
                try:
                    crm.create("account", {{"name": "acct %d" % i}})
                except Exception as exc:
                    errors.append(repr(exc))
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(work, range(WORKERS)))
        stats = crm.stats()
    server = mock.stats()
    stored = len(mock.records("account"))
print(json.dumps({{"errors": errors[:5], "n_errors": len(errors), "stored": stored, "client": stats,
                  "server": server}}, default=str))
"""


def _load(records: int, *, close_every: int = 0, budget: str = "PortBudget.from_host()") -> Any:
    code = LOAD.format(records=records, close_every=close_every, budget=budget)
    with Netns(WALL_SYSCTLS) as ns:
        return ns.run_json(code, timeout=240)


def test_control_per_call_requests_post_hits_the_wall() -> None:
    with Netns(WALL_SYSCTLS) as ns:
        result = ns.run_json(CONTROL, timeout=120)
    assert result["errno"] == errno.EADDRNOTAVAIL
    # 100 ports: the wall is at call 101 (give or take a port the kernel holds back).
    assert 90 <= result["failed_at"] <= 200
    assert result["accepted"] == result["failed_at"] - 1


def test_crmload_loads_five_thousand_records_behind_the_wall() -> None:
    result = _load(5000)
    assert result["n_errors"] == 0, result["errors"]
    assert result["stored"] == 5000
    client, server = result["client"], result["server"]
    assert client["sockets_opened"] == server["connections_accepted"] <= 4
    assert client["retries"] == 0


def test_keepalive_broken_stays_within_budget_in_the_namespace() -> None:
    """Connection: close on every answer, 50-port/5 s budget: more sockets than the range has, 0 errors."""
    records = 120
    result = _load(records, close_every=1, budget="PortBudget(ports=50, time_wait_s=5)")
    client = result["client"]
    assert result["n_errors"] == 0, result["errors"]
    assert result["stored"] == records
    assert client["sockets_opened"] == result["server"]["connections_accepted"] >= records
    new_conns = client["connect_attempts"] - client["guard_burst"]
    assert new_conns / client["connect_window_s"] <= client["guard_rate"] * 1.0001
    assert client["guard_rate"] <= 50 / 5

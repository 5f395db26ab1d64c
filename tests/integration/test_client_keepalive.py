"""Acceptance 3: keep-alive broken (``Connection: close`` on every answer); new connections stay in budget.

The rate is measured on the guard's own injected (virtual) clock, never on the wall clock: every guard slot
lies inside the client's connect window, so ``(connects - burst) / window`` bounds the connect rate.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from crmload.budget import PortBudget
from crmload.client import CrmClient
from crmload.mock import FaultPlan, MockCrm
from crmload.throttle import RateLimit

BUDGET = PortBudget(ports=50, time_wait_s=5)
RECORDS = 200
WORKERS = 4


def test_connection_close_on_every_answer_keeps_new_connections_within_budget(
    crm: MockCrm, vclock: Any
) -> None:
    crm.configure(FaultPlan(close_every=1))
    errors: list[BaseException] = []
    with CrmClient(
        crm.url,
        org="Contoso",
        workers=WORKERS,
        rate=RateLimit.unlimited(),
        budget=BUDGET,
        clock=vclock.clock,
        sleep=vclock.sleep,
    ) as client:

        def work(first: int) -> None:
            for i in range(first, RECORDS, WORKERS):
                try:
                    client.create("account", {"name": f"a{i}"})
                except BaseException as exc:  # asserted below
                    errors.append(exc)

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(work, range(WORKERS)))
        stats = client.stats()
    server = crm.stats()

    assert errors == []
    assert len(crm.records("account")) == RECORDS
    # Keep-alive really was broken: one socket per call, counted identically on both ends.
    assert stats["sockets_opened"] == server["connections_accepted"] >= RECORDS
    assert server["faults_by_kind"]["close_every"] == RECORDS
    # The guard held the pace: it made callers wait, and the measured rate is within the budget.
    assert stats["guard_waits"] > 0
    assert stats["guard_rate"] <= BUDGET.per_second
    new_conns = stats["connect_attempts"] - stats["guard_burst"]
    assert new_conns / stats["connect_window_s"] <= stats["guard_rate"] * 1.0001

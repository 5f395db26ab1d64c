"""The mock's own judge for rate tests: a per-10 ms timeline of requests received and the times of faults;
``busy_next`` answers exactly N requests busy."""

from __future__ import annotations

from crmload.client import CrmClient
from crmload.mock import FaultPlan, MockCrm


def test_timeline_counts_every_request_and_busy_next_exactly_n(crm: MockCrm) -> None:
    crm.configure(FaultPlan(busy_next=2, retry_after_s=0))
    with CrmClient(crm.url, org="Contoso", rate="unlimited") as client:
        for i in range(7):
            client.create("account", {"name": f"t{i}"})  # each busy answer is retried
    stats = crm.stats()
    assert stats["faults_by_kind"] == {"busy_next": 2}
    assert len(stats["fault_times"]["busy_next"]) == 2
    timeline = stats["requests_timeline"]
    assert timeline["bin_s"] == 0.01
    assert sum(timeline["counts"].values()) == stats["requests"] == 9
    assert len(crm.records("account")) == 7

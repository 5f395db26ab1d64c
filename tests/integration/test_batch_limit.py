"""The client's batch limit after lost answers: halved, each request cut at the limit of the moment, and grown
back by answered batches up to the endpoint's largest (a MaxBatchSize fault's limit stays for good)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from crmload import CrmClient
from crmload.errors import RetryExhaustedError
from crmload.mock import FaultPlan, MockCrm
from crmload.retry import RetryPolicy


def test_lost_answers_halve_the_limit_and_answers_grow_it_back(crm_factory: Callable[..., MockCrm]) -> None:
    server = crm_factory(faults=FaultPlan(reset_after_commit_rate=1.0, seed=1))
    policy = RetryPolicy(max_attempts=2, backoff_base_s=0.0, jitter=False)
    with CrmClient(server.url2011, retry=policy, rate="unlimited") as client:
        lost = client.create_many(
            "account", [{"name": f"k{i}"} for i in range(40)], ids=[uuid.uuid4() for _ in range(40)]
        )
        assert all(isinstance(r, RetryExhaustedError) for r in lost)  # every answer lost, twice
        assert client.batch_limit == 20
        server.configure(None)
        server.reset()
        done = client.create_many("account", [{"name": f"n{i}"} for i in range(100)])
        assert all(isinstance(r, uuid.UUID) for r in done)
        # Cut at 20, then each answer doubles the limit: 20, 40, then the 40 left.
        assert server.stats()["batch_sizes"] == {"20": 1, "40": 2}
        assert client.batch_limit == 160
        for _ in range(3):
            client.create_many("account", [{"name": "x"}])
        assert client.batch_limit == 1000


def test_max_batch_size_stays_for_good(crm_factory: Callable[..., MockCrm]) -> None:
    server = crm_factory(max_batch_size=50)
    with CrmClient(server.url2011, rate="unlimited") as client:
        client.create_many("account", [{"name": f"n{i}"} for i in range(120)])
        for _ in range(5):
            client.create_many("account", [{"name": "x"}])
        assert client.batch_limit == 50
        client.create_many("account", [{"name": f"m{i}"} for i in range(120)])
    sizes = {int(k): n for k, n in server.stats()["batch_sizes"].items()}
    assert sizes.get(120, 0) <= 1  # only the first, refused before anything ran
    assert max(k for k in sizes if k != 120) == 50
    assert len(server.records("account")) == 245

"""``crmload.dask.load`` (issue 13 acceptance 6, scaled down): a Dask collection's partitions loaded by worker
processes of a ``distributed.LocalCluster``, each partition with its own journal, under one call budget
shared through a real Redis.

The judge is the mock: its store (every row exactly once) and its own request timeline (the busiest 1 s window
within the shared rate). The full size (100,000 rows) is ``benchmarks/dask_load.py``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmload.errors import ConfigError
from crmload.mock import MockCrm

distributed = pytest.importorskip("distributed", reason="dask is not installed (pip install -e '.[dask]')")
dask_bag = pytest.importorskip("dask.bag")
dask_dataframe = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")

from crmload.dask import load, load_partition  # noqa: E402 - after the skips

pytestmark = pytest.mark.slow

PARTITIONS = 8
WORKERS = 4
ROWS_PER_PARTITION = 500
RATE = 40.0
#: Calls booked just before a 1 s window may arrive inside it. Here eight clients start and stop while
#: four worker processes, Redis and the mock share the CPU (2 cores in CI), so a few may be late. Without
#: the shared budget the four processes would send about 4 x RATE in a window.
ARRIVAL_SLACK = 4


def timeline(crm: MockCrm) -> tuple[dict[int, int], float]:
    t = crm.stats()["requests_timeline"]
    return {int(k): n for k, n in t["counts"].items()}, float(t["bin_s"])


def busiest_window(counts: dict[int, int], bins: int) -> int:
    """The most requests in any ``bins`` consecutive bins (a sliding 1 s window in 10 ms steps)."""
    series = [counts.get(i, 0) for i in range(min(counts), max(counts) + 1)]
    window = best = sum(series[:bins])
    for i in range(bins, len(series)):
        window += series[i] - series[i - bins]
        best = max(best, window)
    return best


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """Four worker processes, one thread each: every partition's task runs in some other process."""
    with (
        distributed.LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # never the default 8787, which a parallel run may hold
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _rows(n: int, prefix: str = "A") -> list[dict[str, str]]:
    return [{"accountnumber": f"{prefix}-{i}", "name": f"Name {i}"} for i in range(n)]


def test_a_bag_loads_every_row_once_under_one_shared_budget(
    dask_client: Any, crm: MockCrm, redis_server: Any, tmp_path: Path
) -> None:
    total = PARTITIONS * ROWS_PER_PARTITION
    bag = dask_bag.from_sequence(_rows(total), npartitions=PARTITIONS)
    options = {"url": crm.url2011, "rate": RATE, "budget_store": redis_server.url}
    status = load(
        bag,
        entity="account",
        key="accountnumber",
        client_options=options,
        journal_dir=tmp_path,
        batch_size=50,
    )

    numbers = Counter(r["accountnumber"] for r in crm.records("account"))
    assert set(numbers) == {f"A-{i}" for i in range(total)}
    assert max(numbers.values()) == 1
    assert status.complete
    assert status.exit_code == 0
    assert status.totals["read"] == status.totals["done"] == status.source_rows == total
    assert status.shards == {
        "kind": "partition",
        "count": PARTITIONS,
        "present": list(range(1, PARTITIONS + 1)),
        "missing": [],
        "repeated": [],
    }
    assert len({p.run["worker"] for p in status.parts}) >= 2  # really spread over worker processes
    assert len(list(tmp_path.glob("account.partition-*-of-8.crmload.sqlite"))) == PARTITIONS

    # One budget for all: no 1 s window of the mock's timeline above the rate (+ burst + arrival slack).
    counts, bin_s = timeline(crm)
    assert sum(counts.values()) == crm.stats()["requests"]
    assert busiest_window(counts, round(1 / bin_s)) <= RATE + 1 + ARRIVAL_SLACK
    span = (max(counts) - min(counts)) * bin_s
    assert (sum(counts.values()) - 1) / span <= RATE * 1.05

    # A second load into the same journals is refused; resume=True finds every row done and sends none.
    with pytest.raises(ConfigError, match="earlier load"):
        load(bag, entity="account", key="accountnumber", client_options=options, journal_dir=tmp_path)
    before = crm.stats()["items_by_op"]
    again = load(
        bag, entity="account", key="accountnumber", client_options=options, journal_dir=tmp_path, resume=True
    )
    assert again.complete
    assert all(p.run["resumed"] for p in again.parts)
    assert crm.stats()["items_by_op"].get("Create", 0) == before.get("Create", 0)


def test_a_dataframe_loads_with_missing_values_as_nulls(
    dask_client: Any, crm: MockCrm, tmp_path: Path
) -> None:
    frame = pd.DataFrame(
        {
            "name": [f"Name {i}" for i in range(400)],
            # Int64, pandas' nullable integer: in float64 a missing value is NaN and 8 is 8.0
            "numberofemployees": pd.array([i if i % 7 else None for i in range(400)], dtype="Int64"),
            "telephone1": [None if i % 3 == 0 else f"555-{i}" for i in range(400)],
        }
    )
    ddf = dask_dataframe.from_pandas(frame, npartitions=PARTITIONS)
    status = load(
        ddf, entity="account", client_options={"url": crm.url2011, "rate": "unlimited"}, journal_dir=tmp_path
    )
    assert status.complete
    assert status.exit_code == 0  # nothing rejected
    records = {r["name"]: r for r in crm.records("account")}
    assert len(records) == 400
    assert records["Name 8"]["numberofemployees"] == 8
    assert "telephone1" not in records["Name 3"] or records["Name 3"]["telephone1"] is None
    assert records["Name 4"]["telephone1"] == "555-4"


def test_a_retried_task_resumes_its_own_journal(crm: MockCrm, tmp_path: Path) -> None:
    """What Dask does when a worker dies: run the same task again. It resumes, and sends nothing twice."""
    from crmload.dask import _Job

    job = _Job(
        entity="account",
        key="accountnumber",
        client_options={"url": crm.url2011, "rate": "unlimited"},
        journal_dir=str(tmp_path),
        count=2,
        run_id="run-1",
    )
    first = load_partition(_rows(100), 2, job)
    assert first["done"] == 100
    assert first["shard"] == "partition 2/2"
    second = load_partition(_rows(100), 2, job)
    assert second["run"]["resumed"]
    assert second["done"] == 100
    assert len(crm.records("account")) == 100
    with pytest.raises(ConfigError, match="mappings"):
        load_partition([("A-1", "x")], 1, job)

"""The client under the server's service-protection budget (issue 10, acceptance 2 and 4 scaled down).

The mock enforces 200 requests / 4 s execution / 8 concurrent over 10 s, at 2 ms of server time a record, so
2,500 rows (5 s of execution) cannot all fit in one window. Everything is judged by what the mock counted:
throttles by facet, records stored, requests on its 10 ms timeline, peak concurrency.
"""

from __future__ import annotations

import csv
import json
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crmload import Bearer, CrmClient
from crmload.cli import main
from crmload.mock import FaultPlan, MockCrm
from crmload.mock.protection import ServiceLimits
from crmload.server_limits import ServerLimits

TOKEN = "tok-5be2"
SCALED = ServiceLimits(requests=200, exec_s=4.0, concurrent=8, window_s=10.0)
ROWS = 2500


@pytest.fixture
def limited(crm_factory: Callable[..., MockCrm], monkeypatch: pytest.MonkeyPatch) -> MockCrm:
    monkeypatch.setenv("CRM_TOKEN", TOKEN)
    plan = FaultPlan(exec_ms_per_record=2.0)
    return crm_factory(org="Contoso", tokens={TOKEN: "loader"}, limits=SCALED, faults=plan)


def _user(crm: MockCrm) -> dict[str, Any]:
    users: dict[str, Any] = crm.stats()["service_protection"]["users"]
    return users["loader"]  # type: ignore[no-any-return]


def _stored_once(crm: MockCrm, n: int) -> None:
    numbers = Counter(str(r["accountnumber"]) for r in crm.records("account"))
    assert len(numbers) == n
    assert set(numbers.values()) == {1}


def _csv(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "rows.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["accountnumber", "name"])
        w.writerows([f"S-{i:05d}", f"Budget {i}"] for i in range(n))
    return path


def test_a_throttle_pauses_every_worker_and_is_counted_by_facet(
    limited: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The client assumes the documented defaults, so the scaled limit is met: the first execution-time
    # fault pauses all 8 workers for its Retry-After, teaches the 4 s limit, and no row is sent twice.
    args = ["import", str(_csv(tmp_path, ROWS)), "--entity", "account", "--url", limited.url2011]
    args += ["--token-env", "CRM_TOKEN", "--workers", "8", "--batch-size", "100", "--rate", "auto"]
    code = main([*args, "--journal", str(tmp_path / "j"), "--no-progress", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["done"] == ROWS
    _stored_once(limited, ROWS)
    user = _user(limited)
    assert user["throttles"]["execution_time"] >= 1
    budget = summary["client"]["server_budget"]
    assert budget["throttles"] == user["throttles"]  # every fault the mock sent, counted by facet
    assert budget["limits"]["exec_s"] == 4.0  # learned from the fault's message
    assert "execution_time" in budget["learned"]

    stats = limited.stats()
    first = stats["fault_times"]["service_protection_execution_time"][0]
    extensions = user["penalty_extensions"]
    step = SCALED.window_s / 100
    retry_after = user["penalty_s"]["execution_time"] - step * extensions
    if user["throttles"]["concurrency"] or user["throttles"]["requests"]:
        pytest.fail(f"only the execution-time facet should trip here: {user['throttles']}")
    bin_s = stats["requests_timeline"]["bin_s"]
    arrivals = [int(k) * bin_s for k, n in stats["requests_timeline"]["counts"].items() for _ in range(n)]
    # A request already on its way when the fault was sent may still arrive; nothing is sent afterwards.
    during = [t for t in arrivals if first + 0.5 <= t < first + retry_after - 0.05]
    assert retry_after > 1.0
    assert during == []
    assert any(t >= first + retry_after - 0.05 for t in arrivals)  # and the run went on after the pause


def test_server_limits_known_up_front_give_no_throttles_from_library_threads(limited: MockCrm) -> None:
    # A script's own 12 threads, one client: held at 8 in flight and under 4 s of execution per 10 s.
    limits = ServerLimits(requests=200, exec_s=4.0, concurrent=8, window_s=10.0)
    rows = [{"accountnumber": f"L-{i:05d}", "name": f"Lib {i}"} for i in range(ROWS)]
    slices = [rows[i : i + 100] for i in range(0, ROWS, 100)]
    lock = threading.Lock()
    failures: list[BaseException] = []
    with CrmClient(limited.url2011, auth=Bearer(TOKEN), workers=12, server_limits=limits) as client:

        def work() -> None:
            while True:
                with lock:
                    if not slices:
                        return
                    batch = slices.pop()
                try:
                    results = client.create_many("account", batch)
                    assert all(not isinstance(r, BaseException) for r in results)
                except BaseException as exc:
                    failures.append(exc)

        threads = [threading.Thread(target=work) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        stats = client.stats()["server_budget"]
    assert failures == []
    _stored_once(limited, ROWS)
    user = _user(limited)
    assert user["throttles_total"] == 0
    assert stats["throttles_total"] == 0
    assert user["peak"]["concurrency"] <= 8
    assert all(w["exec_s"] <= 4.0 + 0.25 for w in user["windows"])  # fixed windows: one call may straddle
    assert len(user["windows"]) >= 2  # 5 s of execution needed a second window: the budget held calls back
    assert stats["peak_share"]["execution_time"] <= 1.0


def test_dop_hint_caps_calls_in_flight(crm_factory: Callable[..., MockCrm]) -> None:
    hinted = ServiceLimits(requests=6000, exec_s=1200.0, concurrent=52, window_s=300.0, dop_hint=3)
    crm = crm_factory(org="Contoso", tokens={TOKEN: "loader"}, limits=hinted, faults=FaultPlan(latency_ms=5))
    rows = [{"accountnumber": f"D-{i:04d}", "name": f"Dop {i}"} for i in range(480)]
    with CrmClient(crm.url2011, auth=Bearer(TOKEN), workers=8) as client:
        threads = [
            threading.Thread(target=client.create_many, args=("account", rows[i : i + 20]))
            for i in range(0, len(rows), 20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert client.stats()["server_budget"]["dop_hint"] == 3
    _stored_once(crm, len(rows))
    assert _user(crm)["peak"]["concurrency"] <= 3


def test_server_limits_flag_is_checked_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _csv(tmp_path, 3)
    assert main(["import", str(src), "--entity", "account", "--server-limits", "200/4"]) == 2
    err = capsys.readouterr().err
    assert "REQUESTS/EXEC_SECONDS/CONCURRENT" in err
    assert not (tmp_path / "rows.csv.crmload.sqlite").exists()


def test_server_limits_off_sends_without_a_budget(limited: MockCrm) -> None:
    with CrmClient(limited.url2011, auth=Bearer(TOKEN), server_limits="off") as client:
        client.create_many("account", [{"name": f"off {i}"} for i in range(10)])
        assert client.server_limits is None
        assert client.stats()["server_budget"]["limits"] is None
    assert len(limited.records("account")) == 10

"""A pool of identities (issue 13, acceptance 5 scaled down): each identity its own server budget.

The mock allows each user 20 requests per 1 s window. One identity alone can never get more than 20 requests
into one second; two share the calls and together fill both budgets, 0 throttles when the limits are known.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crmload import Bearer, ServerLimits
from crmload.cli import main
from crmload.identities import IdentityPool
from crmload.mock import MockCrm
from crmload.mock.protection import ServiceLimits

PER_USER = ServiceLimits(requests=20, exec_s=100.0, concurrent=8, window_s=1.0)
TOKENS = {"tok-a1": "alice", "tok-b2": "bob"}


@pytest.fixture
def two_users(crm_factory: Callable[..., MockCrm]) -> MockCrm:
    return crm_factory(org="Contoso", tokens=TOKENS, limits=PER_USER)


def _busiest_second(stats: dict[str, Any]) -> int:
    counts = {int(k): n for k, n in stats["requests_timeline"]["counts"].items()}
    bins = round(1.0 / stats["requests_timeline"]["bin_s"])
    return max(sum(counts.get(b, 0) for b in range(x, x + bins)) for x in counts)


def test_two_identities_fill_both_budgets_without_throttles(two_users: MockCrm) -> None:
    limits = ServerLimits(requests=20, exec_s=100.0, concurrent=8, window_s=1.0)
    auths = {"alice": Bearer("tok-a1"), "bob": Bearer("tok-b2")}
    calls = iter(range(160))
    lock = threading.Lock()
    with IdentityPool.open(
        two_users.url2011, auths, workers=8, rate="unlimited", server_limits=limits
    ) as pool:

        def work() -> None:
            while True:
                with lock:
                    i = next(calls, None)
                if i is None:
                    return
                pool.create("account", {"name": f"pool {i}"})

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        stats = pool.stats()
    mock = two_users.stats()
    assert len(two_users.records("account")) == 160
    users = mock["service_protection"]["users"]
    assert {u: users[u]["throttles_total"] for u in ("alice", "bob")} == {"alice": 0, "bob": 0}
    assert min(mock["requests_by_user"].values()) >= 60  # both identities carried calls
    assert all(w["requests"] <= 20 for u in users.values() for w in u["windows"])
    assert _busiest_second(mock) > 20  # more than one identity's budget in one second: impossible alone
    assert set(stats["identities"]) == {"alice", "bob"}
    assert stats["server_budget"]["throttles_total"] == 0


def test_a_paused_identity_is_passed_over(two_users: MockCrm) -> None:
    auths = {"alice": Bearer("tok-a1"), "bob": Bearer("tok-b2")}
    with IdentityPool.open(two_users.url2011, auths, rate="unlimited") as pool:
        pool._clients["alice"]._limiter.on_busy(30.0)  # as a throttle fault would: alice waits 30 s
        for i in range(6):
            pool.create("account", {"name": f"carry on {i}"})
    assert two_users.stats()["requests_by_user"] == {"bob": 6}


def test_cli_identity_flags_make_a_pool_and_report_each(
    two_users: MockCrm, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ID_ALICE", "tok-a1")
    monkeypatch.setenv("ID_BOB", "tok-b2")
    src = tmp_path / "rows.csv"
    src.write_text("name\n" + "".join(f"cli {i}\n" for i in range(40)), encoding="utf-8")
    args = ["import", str(src), "--entity", "account", "--url", two_users.url2011, "--batch-size", "1"]
    args += ["--identity", "ID_ALICE", "--identity", "ID_BOB", "--server-limits", "20/100/8/1"]
    code = main([*args, "--rate", "unlimited", "--journal", str(tmp_path / "j"), "--no-progress", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["done"] == 40
    assert set(summary["client"]["server_budget"]["identities"]) == {"ID_ALICE", "ID_BOB"}
    assert set(two_users.stats()["requests_by_user"]) == {"alice", "bob"}
    assert "tok-a1" not in out + err
